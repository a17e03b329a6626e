-- The verifiable audit log: leaves, the Merkle tree as tlog-tiles, its state, checkpoints,
-- per-origin sequence tracking and detected gaps. Only the appender holding the advisory lock
-- writes leaves, tiles and state; see hub/audit/store.py.

-- One row per leaf; idx is gap-free from 0, assigned by the single writer (never a sequence,
-- whose rollbacks would leave holes). The columns after `leaf` are a search index derived
-- from the leaf bytes; `govhub audit verify --full` checks that they agree.
CREATE TABLE IF NOT EXISTS audit_leaves (
    idx           bigint PRIMARY KEY CHECK (idx >= 0),
    event_key     text NOT NULL UNIQUE,
    digest        bytea NOT NULL,
    leaf          bytea NOT NULL,
    event_id      text NOT NULL,
    source        text NOT NULL,
    type          text NOT NULL,
    subject       text NOT NULL,
    verdict       text NOT NULL CHECK (verdict IN ('accepted', 'quarantined')),
    reason        text,
    event_time    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    stream        text NOT NULL,
    stream_seq    bigint NOT NULL,
    origin_stream text,
    origin_seq    bigint
);
ALTER TABLE audit_leaves ALTER COLUMN leaf SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS audit_leaves_event_id ON audit_leaves (event_id);
CREATE INDEX IF NOT EXISTS audit_leaves_source_time ON audit_leaves (source, event_time);
CREATE INDEX IF NOT EXISTS audit_leaves_type_time ON audit_leaves (type, event_time);

-- Hash tiles (c2sp.org/tlog-tiles): tile `level` holds node hashes of Merkle level 8*level.
-- A full tile is 8,192 bytes and never changes; the rightmost tile of a level grows by
-- appending (the writer refuses any update that is not an extension of the stored bytes).
CREATE TABLE IF NOT EXISTS audit_tiles (
    level   smallint NOT NULL CHECK (level >= 0),
    idx     bigint NOT NULL CHECK (idx >= 0),
    hashes  bytea NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192
                                  AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
);
ALTER TABLE audit_tiles ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- The tree as of the last committed batch: size, root and the compact range (frontier).
CREATE TABLE IF NOT EXISTS audit_state (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    size           bigint NOT NULL,
    root           bytea NOT NULL,
    compact_range  bytea NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_state (size, root, compact_range)
VALUES (0, sha256(''::bytea), '\x0000000000000000'::bytea)
ON CONFLICT DO NOTHING;

-- Signed checkpoints. One per tree size (so two different roots can never be stored for a
-- size); `note` gains witness cosignatures, `published_at` is set once the k-of-n witness
-- policy is met.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    size          bigint PRIMARY KEY,
    root          bytea NOT NULL,
    note          text NOT NULL,
    cosigners     text[] NOT NULL DEFAULT '{}',
    signed_at     timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_published
    ON audit_checkpoints (size) WHERE published_at IS NOT NULL;

-- Highest sequence seen per origin stream (the hub stream itself, and each sourced county
-- stream), and the ranges that were skipped. A range is removed when its messages arrive late
-- (redelivery after a restart); what remains is reported by `govhub audit verify`.
CREATE TABLE IF NOT EXISTS audit_origins (
    stream      text PRIMARY KEY,
    last_seq    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS audit_gaps (
    stream       text NOT NULL,
    first_seq    bigint NOT NULL,
    last_seq     bigint NOT NULL CHECK (last_seq >= first_seq),
    detected_at  timestamptz NOT NULL DEFAULT now(),
    after_leaf   bigint,
    PRIMARY KEY (stream, first_seq)
);
