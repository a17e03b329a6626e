-- The schema registry's record: every registered schema once by fingerprint, the subjects
-- (evolving contracts) with their compatibility mode, and each subject's versions.
-- The KV bucket govhub_schemas is a copy of these tables that receivers watch.
CREATE TABLE IF NOT EXISTS schemas (
    fingerprint   bytea PRIMARY KEY CHECK (length(fingerprint) = 8),
    name          text NOT NULL,
    canonical     text NOT NULL,
    schema_json   text NOT NULL,
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS schema_subjects (
    subject       text PRIMARY KEY,
    owner         text NOT NULL,
    compatibility text NOT NULL DEFAULT 'BACKWARD' CHECK (compatibility IN (
        'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD', 'FORWARD_TRANSITIVE',
        'FULL', 'FULL_TRANSITIVE', 'NONE')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS schema_versions (
    subject       text NOT NULL REFERENCES schema_subjects (subject),
    version       int NOT NULL CHECK (version > 0),
    fingerprint   bytea NOT NULL REFERENCES schemas (fingerprint),
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL,
    event_id      text NOT NULL,
    PRIMARY KEY (subject, version),
    UNIQUE (subject, fingerprint)
);

CREATE INDEX IF NOT EXISTS schema_versions_fingerprint ON schema_versions (fingerprint);
CREATE INDEX IF NOT EXISTS schemas_name ON schemas (name);
