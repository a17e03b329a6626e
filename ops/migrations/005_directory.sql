-- The shared resource directory (hub/directory/): what the `directory` service materializes
-- from the signed dir.> events of the hub stream. Everything here can be rebuilt from the
-- stream; the events (and the audit log) are the record, these tables are for search.

-- One row per resource code: its current version as signed (`entry`) and its state.
CREATE TABLE IF NOT EXISTS directory_entries (
    code            text PRIMARY KEY,
    provider        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'withdrawn')),
    version         int NOT NULL CHECK (version > 0),
    entry           jsonb NOT NULL,
    event_id        text NOT NULL,
    published_at    timestamptz NOT NULL,
    modified_at     timestamptz NOT NULL,
    withdrawn_at    timestamptz,
    withdraw_reason text,
    seq             bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_entries_provider ON directory_entries (provider);

-- The search side of each entry, kept narrow so a query touching thousands of matches reads
-- few pages: facet columns, normalised text, and the entry's grams (Chinese bigrams, Latin
-- trigrams, hub/directory/ngrams.py, as 32-bit keys) under a GIN index of core PostgreSQL.
CREATE TABLE IF NOT EXISTS directory_search (
    code         text PRIMARY KEY REFERENCES directory_entries (code),
    status       text NOT NULL,
    provider     text NOT NULL,
    unit         text NOT NULL,
    category     text NOT NULL,
    class_code   text NOT NULL,
    sharing_type text NOT NULL CHECK (sharing_type IN ('unconditional', 'conditional', 'not_shared')),
    open_public  boolean NOT NULL,
    modified_at  timestamptz NOT NULL,
    title        text NOT NULL,
    search_text  text NOT NULL,
    grams        int4[] NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_search_grams ON directory_search USING gin (grams);
CREATE INDEX IF NOT EXISTS directory_search_unit ON directory_search (unit);
CREATE INDEX IF NOT EXISTS directory_search_class ON directory_search (class_code);
CREATE INDEX IF NOT EXISTS directory_search_open ON directory_search (open_public) WHERE open_public;

-- Every version of every entry, as signed (DCAT dcat:hasVersion / dcat:previousVersion).
CREATE TABLE IF NOT EXISTS directory_versions (
    code        text NOT NULL,
    version     int NOT NULL,
    kind        text NOT NULL,
    entry       jsonb NOT NULL,
    event_id    text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (code, version)
);

-- Access requests and their grants (one row per request; the state is its latest step).
-- `expired` is not stored: a granted row whose valid_until has passed reads as expired.
CREATE TABLE IF NOT EXISTS directory_requests (
    request_id          text PRIMARY KEY,
    code                text NOT NULL,
    provider            text NOT NULL,
    requester           text NOT NULL,
    purpose             text NOT NULL,
    fields              text[] NOT NULL,
    requested_until     timestamptz,
    entry_version       int NOT NULL,
    sharing_type        text NOT NULL,
    state               text NOT NULL CHECK (state IN ('pending', 'granted', 'denied', 'revoked')),
    auto_granted        boolean NOT NULL DEFAULT false,
    requested_at        timestamptz NOT NULL,
    received_at         timestamptz NOT NULL,
    deadline            timestamptz,
    granted_fields      text[],
    valid_until         timestamptz,
    decided_at          timestamptz,
    reason              text,
    request_event_id    text NOT NULL,
    decision_event_id   text,
    revoked_at          timestamptz,
    revoke_event_id     text,
    reminded_at         timestamptz,
    reminder_event_id   text,
    escalated_at        timestamptz,
    escalation_event_id text
);
CREATE INDEX IF NOT EXISTS directory_requests_code ON directory_requests (code);
CREATE INDEX IF NOT EXISTS directory_requests_requester ON directory_requests (requester);
CREATE INDEX IF NOT EXISTS directory_requests_provider ON directory_requests (provider);
CREATE INDEX IF NOT EXISTS directory_requests_open ON directory_requests (deadline)
    WHERE state = 'pending';

-- Coordination cases: requests for resources that are not shared (不予共享) go to the operator.
CREATE TABLE IF NOT EXISTS directory_cases (
    case_id   text PRIMARY KEY,
    code      text NOT NULL,
    provider  text NOT NULL,
    requester text NOT NULL,
    operator  text NOT NULL,
    purpose   text NOT NULL,
    opened_at timestamptz NOT NULL,
    event_id  text NOT NULL
);

-- What the materializer did with each dir.> message it consumed: applied, or refused with
-- the typed reason (the message is then also copied to the quarantine stream).
CREATE TABLE IF NOT EXISTS directory_events (
    seq         bigint PRIMARY KEY,
    event_id    text NOT NULL,
    subject     text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('applied', 'refused', 'duplicate')),
    reason      text,
    detail      text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS directory_events_event_id ON directory_events (event_id);

CREATE TABLE IF NOT EXISTS directory_state (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq bigint NOT NULL
);
INSERT INTO directory_state (id, last_seq) VALUES (true, 0) ON CONFLICT DO NOTHING;
