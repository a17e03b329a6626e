-- Document exchange: participants' encryption keys, and the state the exchange tracker
-- materialises from doc.> events (hub/exchange/tracker.py). Every row is derived from signed
-- events on the bus, which stay the evidence; these tables make status and ledger queries cheap.

-- Public HPKE keys, attested by the owner's signing key; they rotate with the signing key.
CREATE TABLE IF NOT EXISTS participant_encryption_keys (
    participant_id  text NOT NULL REFERENCES participants (id),
    key_id          text NOT NULL,
    suite           text NOT NULL CHECK (suite IN ('x25519', 'mlkem768-x25519')),
    public_key      bytea NOT NULL,
    not_before      timestamptz NOT NULL,
    not_after       timestamptz,
    signing_key_id  text NOT NULL,
    signature       bytea NOT NULL CHECK (length(signature) = 64),
    PRIMARY KEY (participant_id, key_id)
);

-- One row per announced document (a verified DocumentSent), with the signed event kept whole
-- so a fetcher re-verifies the sender's signature instead of trusting this table.
CREATE TABLE IF NOT EXISTS doc_documents (
    doc_id             text PRIMARY KEY,
    manifest_event_id  text NOT NULL UNIQUE,
    sender             text NOT NULL,
    sender_unit        text NOT NULL,
    title              text NOT NULL,
    doc_number         text NOT NULL DEFAULT '',
    classification     text NOT NULL,
    urgency            text NOT NULL,
    file_name          text NOT NULL,
    media_type         text NOT NULL,
    size               bigint NOT NULL,
    sha256             text NOT NULL,
    deadline           timestamptz,
    sent_at            timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL,
    subject            text NOT NULL,
    stream_seq         bigint NOT NULL,
    recipients         text[] NOT NULL,
    headers            jsonb NOT NULL,
    body               bytea NOT NULL,
    recalled_at        timestamptz,
    recall_reason      text,
    expired_at         timestamptz
);
CREATE INDEX IF NOT EXISTS doc_documents_sender_unit ON doc_documents (sender_unit, sent_at);
CREATE INDEX IF NOT EXISTS doc_documents_sent_at ON doc_documents (sent_at);

-- Each recipient's state: sent -> delivered -> accepted | rejected; expired; recalled.
CREATE TABLE IF NOT EXISTS doc_recipients (
    doc_id          text NOT NULL REFERENCES doc_documents (doc_id),
    recipient       text NOT NULL,
    recipient_unit  text NOT NULL,
    state           text NOT NULL DEFAULT 'sent'
                    CHECK (state IN ('sent', 'delivered', 'accepted', 'rejected',
                                     'expired', 'recalled')),
    state_at        timestamptz NOT NULL,
    delivered_at    timestamptz,
    processed_at    timestamptz,
    reason          text,
    PRIMARY KEY (doc_id, recipient)
);
CREATE INDEX IF NOT EXISTS doc_recipients_recipient ON doc_recipients (recipient, state);
CREATE INDEX IF NOT EXISTS doc_recipients_unit ON doc_recipients (recipient_unit);

-- Every applied receipt and notice (delivery, processing, recall, reminder, expiry), kept
-- whole and signed; `outcome` says what it did to the state (applied, late, duplicate).
CREATE TABLE IF NOT EXISTS doc_events (
    event_id    text PRIMARY KEY,
    doc_id      text NOT NULL REFERENCES doc_documents (doc_id),
    kind        text NOT NULL,
    source      text NOT NULL,
    subject     text NOT NULL,
    ce_time     timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL,
    stream_seq  bigint NOT NULL,
    outcome     text NOT NULL,
    record      jsonb NOT NULL,
    headers     jsonb NOT NULL,
    body        bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS doc_events_doc ON doc_events (doc_id, stream_seq);

-- Deadline timers, on the sender's clock: reminders before the deadline, then expiry.
CREATE TABLE IF NOT EXISTS doc_timers (
    doc_id    text NOT NULL REFERENCES doc_documents (doc_id),
    kind      text NOT NULL CHECK (kind IN ('reminder', 'expiry')),
    number    int NOT NULL,
    due_at    timestamptz NOT NULL,
    fired_at  timestamptz,
    PRIMARY KEY (doc_id, kind, number)
);
CREATE INDEX IF NOT EXISTS doc_timers_due ON doc_timers (due_at) WHERE fired_at IS NULL;
