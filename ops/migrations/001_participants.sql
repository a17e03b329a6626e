-- The participant registry: the record of who may send what, with keys and validity windows.
CREATE TABLE IF NOT EXISTS participants (
    id          text PRIMARY KEY,
    unit        text NOT NULL,
    name        text NOT NULL DEFAULT '',
    role        text NOT NULL DEFAULT 'department',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS participant_keys (
    participant_id  text NOT NULL REFERENCES participants (id),
    key_id          text NOT NULL,
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),
    not_before      timestamptz NOT NULL,
    not_after       timestamptz,
    certificate_pem text NOT NULL DEFAULT '',
    PRIMARY KEY (participant_id, key_id)
);
