-- The console's sign-in state (hub/console/auth.py): open challenges, one-time tickets and
-- sessions. In PostgreSQL rather than one process's memory, so that every `govhub serve`
-- behind one address knows the same sessions and a restart signs no one out. Each secret is
-- kept as its SHA-256 digest: a copy of these tables holds no usable cookie, ticket or
-- challenge. Times are POSIX seconds of the console's clock.
CREATE TABLE console_pending (
    digest text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('challenge', 'ticket')),
    participant text NOT NULL,
    text text NOT NULL DEFAULT '',
    expires_at double precision NOT NULL
);
CREATE INDEX console_pending_expires ON console_pending (kind, expires_at);

CREATE TABLE console_sessions (
    digest text PRIMARY KEY,
    participant text NOT NULL,
    csrf text NOT NULL,
    lang text NOT NULL DEFAULT 'zh' CHECK (lang IN ('zh', 'en')),
    created_at double precision NOT NULL,
    seen_at double precision NOT NULL
);
CREATE INDEX console_sessions_seen ON console_sessions (seen_at);
