-- Parallel approval (并联审批): the state the approval projection (hub/approval/projection.py)
-- derives from the evt.*.*.approval.> events of the hub stream. Every row comes from signed
-- events, which stay the evidence; emptying these tables and deleting the `approval` consumer
-- rebuilds them from the stream (`govhub approval rebuild`).

-- One row per opened case (its signed CaseOpened is kept whole in apr_events).
CREATE TABLE IF NOT EXISTS apr_cases (
    case_id           text PRIMARY KEY,
    case_number       text NOT NULL,
    case_type         text NOT NULL,
    type_digest       text NOT NULL,
    title             text NOT NULL,
    applicant_name    text NOT NULL,
    applicant_code    text NOT NULL DEFAULT '',
    unit              text NOT NULL DEFAULT '',
    lead              text NOT NULL,
    supervisor        text NOT NULL,
    attachments       jsonb NOT NULL,
    opened_event_id   text NOT NULL UNIQUE,
    opened_at         timestamptz NOT NULL,
    state             text NOT NULL DEFAULT 'open'
                      CHECK (state IN ('open', 'decided', 'withdrawn')),
    -- What the opinions so far decide (set once every opinion is in, or a binding refusal
    -- came); the lead's CaseDecided must say the same.
    ready_outcome     text,
    ready_at          timestamptz,
    outcome           text,
    decided_event_id  text,
    decided_at        timestamptz,
    withdrawn_at      timestamptz,
    withdraw_reason   text
);
CREATE INDEX IF NOT EXISTS apr_cases_state ON apr_cases (state, opened_at);
CREATE INDEX IF NOT EXISTS apr_cases_number ON apr_cases (case_number);

-- Each reviewing department of a case: its rules, its clock and its opinion.
CREATE TABLE IF NOT EXISTS apr_assignments (
    case_id            text NOT NULL REFERENCES apr_cases (case_id),
    reviewer           text NOT NULL,
    reviewer_unit      text NOT NULL,
    position           int NOT NULL,  -- order of assignment (the case type's order)
    label              text NOT NULL,
    working_days       int NOT NULL,
    refusal_ends_case  boolean NOT NULL,
    material_requests  int NOT NULL,
    warn_days          int NOT NULL,
    resources          text[] NOT NULL DEFAULT '{}',
    assigned_event_id  text NOT NULL,
    assigned_at        timestamptz NOT NULL,
    state              text NOT NULL DEFAULT 'reviewing'
                       CHECK (state IN ('reviewing', 'material_requested', 'approved',
                                        'approved_with_conditions', 'refused', 'closed')),
    opinion_event_id   text,
    opinion_at         timestamptz,
    timed_by           text,
    reasons            text,
    conditions         text[],
    legal_basis        text,
    late               boolean,
    warned_at          timestamptz,
    escalated_at       timestamptz,
    PRIMARY KEY (case_id, reviewer)
);
CREATE INDEX IF NOT EXISTS apr_assignments_reviewer ON apr_assignments (reviewer, state);

-- 补正: a reviewer's request for more material; its clock is paused from requested_at until
-- ended_at (supplied, or ended by its opinion or the case closing).
CREATE TABLE IF NOT EXISTS apr_material (
    request_id          text PRIMARY KEY,
    case_id             text NOT NULL REFERENCES apr_cases (case_id),
    reviewer            text NOT NULL,
    items               text[] NOT NULL,
    reason              text NOT NULL,
    requested_event_id  text NOT NULL,
    requested_at        timestamptz NOT NULL,
    ended_at            timestamptz,
    ended_by            text CHECK (ended_by IN ('supplied', 'opinion', 'closed')),
    supplied_event_id   text,
    attachments         jsonb
);
CREATE INDEX IF NOT EXISTS apr_material_case ON apr_material (case_id, reviewer);

-- Every applied case event, signed and whole; `at` is when the signer's own unit's stream
-- stored it (`timed_by`), `outcome` what it did (applied, late, after_decision, ...).
CREATE TABLE IF NOT EXISTS apr_events (
    event_id    text PRIMARY KEY,
    case_id     text NOT NULL,
    kind        text NOT NULL,
    source      text NOT NULL,
    subject     text NOT NULL,
    ce_time     timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL,
    at          timestamptz NOT NULL,
    timed_by    text NOT NULL,
    stream_seq  bigint NOT NULL,
    outcome     text NOT NULL,
    record      jsonb NOT NULL,
    headers     jsonb NOT NULL,
    body        bytea NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS apr_events_case ON apr_events (case_id, stream_seq);

-- Case events the projection refused into quarantine, with the typed reason: a forged or
-- unauthorized step stays visible in the case's history.
CREATE TABLE IF NOT EXISTS apr_refused (
    stream_seq  bigint PRIMARY KEY,
    event_id    text NOT NULL,
    case_id     text,
    source      text NOT NULL,
    subject     text NOT NULL,
    stored_at   timestamptz NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL
);
CREATE INDEX IF NOT EXISTS apr_refused_case ON apr_refused (case_id);
