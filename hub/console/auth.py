"""Sign-in by a key-signed one-time challenge, sessions in HttpOnly SameSite=Strict cookies, CSRF.

Why this method (docs/security.md, "Console sign-in"): every person who acts in the console
acts as a participant, and a participant already has an Ed25519 key in the registry that
receivers and auditors trust. Signing in proves control of that key, so the console adds no
second set of credentials (no passwords to store, phish or reset) and a revoked participant
can no longer sign in the moment its revocation reaches the registry copy.

The flow, with `govhub console login --as ID --url URL` on the machine that holds the key:

1. The helper POSTs `{"participant"}` as JSON to `/console/login/challenge`; the console keeps a
   random challenge for `CHALLENGE_TTL_S` and returns its text, which names the purpose, the
   console's origin, the participant and the expiry, so a signature cannot be replayed to
   another console or used as anything but a sign-in.
2. The helper signs the text with the participant's current key and POSTs the signature to
   `/console/login/answer`; the console checks it with the registry's key for that id (valid
   now, not revoked), forgets the challenge (one use) and answers a one-time sign-in link.
3. The person opens the link; the page asks to confirm (a POST, so a link preview cannot use
   it up) and the console sets the session cookie. The ticket too is used once, within
   `TICKET_TTL_S`.

Challenges, tickets and sessions live in PostgreSQL (`console_pending`, `console_sessions`,
migration 012), each keyed by the SHA-256 of its secret, so every serve process on the
database knows them and a restart signs no one out; a session has an idle and an absolute
limit. Each session has a CSRF token that every
POST form carries; a POST without it, with another one, or from another origin is refused
with 403 before any handler runs. JSON endpoints of the sign-in accept only
`application/json`, which a cross-site form cannot send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web
from cryptography.exceptions import InvalidSignature

from hub.envelope import SigningKey
from hub.errors import GovhubError, RejectedEvent
from hub.participants import ParticipantCache
from hub.timetext import rfc3339_seconds

COOKIE = "govhub_console"
CHALLENGE_TTL_S = 120.0
TICKET_TTL_S = 120.0
IDLE_S = 30 * 60.0
ABSOLUTE_S = 10 * 3600.0
MAX_PENDING = 10_000
"""At most this many open challenges or tickets: an anonymous flood cannot fill the table."""
TOUCH_S = 60.0
"""A session's last use is written at most this often (the idle limit counts in minutes)."""
CHALLENGE_PREFIX = "govhub-console-login-v1"


class SignInError(GovhubError):
    """A sign-in step failed: unknown participant, wrong or expired challenge, bad signature."""


def challenge_text(origin: str, participant: str, nonce: str, expires: float) -> str:
    """The exact text a participant signs to sign in (each line ended by a newline)."""
    until = rfc3339_seconds(datetime.fromtimestamp(expires, UTC))
    return f"{CHALLENGE_PREFIX}\n{origin}\n{participant}\n{nonce}\n{until}\n"


def sign_challenge(key: SigningKey, text: str, console_url: str | None = None) -> dict[str, str]:
    """What the CLI helper answers: the key it signed with and the base64 signature.

    It signs only a sign-in challenge for its own participant and, given the console's URL it
    contacted, only one naming that console's host: a console that relayed another console's
    challenge (to sign in there as this participant) is refused here.
    """
    lines = text.split("\n")
    if len(lines) != 6 or lines[0] != CHALLENGE_PREFIX or lines[5] != "":
        raise SignInError("the console sent something that is not a sign-in challenge")
    if lines[2] != key.participant:
        raise SignInError(f"the challenge is for {lines[2]!r}, not {key.participant}")
    if console_url is not None and _host(lines[1]) != _host(console_url):
        raise SignInError(
            f"the challenge names the console {lines[1]!r}, not {console_url}: refusing to sign "
            "a sign-in for another console"
        )
    signature = key.private_key.sign(text.encode())
    return {
        "key": f"{key.participant}/{key.key_id}",
        "signature": base64.b64encode(signature).decode(),
    }


def _host(url: str) -> str:
    """host[:port] of a URL (the scheme may differ behind a TLS-terminating proxy)."""
    parsed = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    port = parsed.port if parsed.port not in (None, default) else None
    return f"{(parsed.hostname or '').lower()}" + (f":{port}" if port else "")


@dataclass
class Session:
    """One signed-in person, acting as `participant`."""

    participant: str
    csrf: str
    created: float
    seen: float
    lang: str = "zh"
    digest: str = ""
    """The SHA-256 of the cookie value: the session's key in `console_sessions`."""


@dataclass
class Auth:
    """Challenges, tickets and sessions, shared by every console process on one database.

    Each one-time secret is taken with a single `DELETE … RETURNING`, so of two processes
    answering the same challenge or redeeming the same ticket exactly one succeeds.
    """

    pool: asyncpg.Pool
    participants: ParticipantCache
    clock: Any = time.time

    async def _prune(self, conn: asyncpg.Connection) -> None:
        now = self.clock()
        await conn.execute("DELETE FROM console_pending WHERE expires_at <= $1", now)
        await conn.execute(
            "DELETE FROM console_sessions WHERE seen_at <= $1 OR created_at <= $2",
            now - IDLE_S,
            now - ABSOLUTE_S,
        )

    async def _pending(self, conn: asyncpg.Connection, kind: str) -> int:
        count = await conn.fetchval(
            "SELECT count(*) FROM console_pending WHERE kind = $1 AND expires_at > $2",
            kind,
            self.clock(),
        )
        return int(count)

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.seen < IDLE_S and now - session.created < ABSOLUTE_S

    async def challenge(self, participant: str, origin: str) -> dict[str, str]:
        """Open a challenge for a registered, active participant."""
        found = self.participants.get(participant)
        if found is None or found.status != "active":
            raise SignInError(f"{participant} is not an active participant of this hub")
        async with self.pool.acquire() as conn:
            await self._prune(conn)
            if await self._pending(conn, "challenge") >= MAX_PENDING:
                raise SignInError("too many sign-ins are open; try again in two minutes")
            challenge_id = secrets.token_urlsafe(18)
            expires = self.clock() + CHALLENGE_TTL_S
            text = challenge_text(origin, participant, secrets.token_urlsafe(24), expires)
            await conn.execute(
                "INSERT INTO console_pending (digest, kind, participant, text, expires_at)"
                " VALUES ($1, 'challenge', $2, $3, $4)",
                _digest(challenge_id),
                participant,
                text,
                expires,
            )
        return {"challenge_id": challenge_id, "challenge": text}

    async def answer(self, challenge_id: str, key: str, signature: str) -> str:
        """Check a signed challenge (used up either way); returns a one-time ticket."""
        pending = await self._take("challenge", challenge_id)
        if pending is None:
            raise SignInError("the challenge is unknown, used or expired; run the login again")
        wanted, text = pending
        participant, _, kid = key.partition("/")
        if participant != wanted:
            raise SignInError(f"the challenge was for {wanted}, not {participant}")
        found = self.participants.get(participant)
        if found is None:
            raise SignInError(f"{participant} is not a participant of this hub")
        try:
            public = found.check_key(kid, datetime.now(UTC))
            public.verify(base64.b64decode(signature, validate=True), text.encode())
        except RejectedEvent as exc:
            raise SignInError(f"that key may not sign in: {exc}") from None
        except (InvalidSignature, ValueError):
            raise SignInError(f"the signature does not verify with {participant}'s key") from None
        ticket = secrets.token_urlsafe(32)
        async with self.pool.acquire() as conn:
            if await self._pending(conn, "ticket") >= MAX_PENDING:
                raise SignInError("too many sign-ins are open; try again in two minutes")
            await conn.execute(
                "INSERT INTO console_pending (digest, kind, participant, expires_at)"
                " VALUES ($1, 'ticket', $2, $3)",
                _digest(ticket),
                participant,
                self.clock() + TICKET_TTL_S,
            )
        return ticket

    async def _take(self, kind: str, secret: str) -> tuple[str, str] | None:
        """Use up a live challenge or ticket: (participant, text), or None."""
        row = await self.pool.fetchrow(
            "DELETE FROM console_pending WHERE digest = $1 AND kind = $2"
            " RETURNING participant, text, expires_at",
            _digest(secret),
            kind,
        )
        if row is None or row["expires_at"] <= self.clock():
            return None
        return row["participant"], row["text"]

    async def ticket_participant(self, ticket: str) -> str | None:
        """Who a still-valid ticket signs in, without using it up (the confirmation page)."""
        participant = await self.pool.fetchval(
            "SELECT participant FROM console_pending"
            " WHERE digest = $1 AND kind = 'ticket' AND expires_at > $2",
            _digest(ticket),
            self.clock(),
        )
        return str(participant) if participant is not None else None

    async def redeem(self, ticket: str) -> tuple[str, Session]:
        """Use a ticket up; returns the new session's cookie value and the session."""
        pending = await self._take("ticket", ticket)
        if pending is None:
            raise SignInError("this sign-in link is unknown, used or expired; run the login again")
        return await self.open_session(pending[0])

    async def open_session(self, participant: str) -> tuple[str, Session]:
        """A new session for a participant (after a redeemed ticket)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(participant, secrets.token_urlsafe(32), now, now, digest=_digest(token))
        await self.pool.execute(
            "INSERT INTO console_sessions (digest, participant, csrf, lang, created_at, seen_at)"
            " VALUES ($1, $2, $3, $4, $5, $5)",
            session.digest,
            participant,
            session.csrf,
            session.lang,
            now,
        )
        return token, session

    async def session(self, token: str | None) -> Session | None:
        """The live session of a cookie value (touching it), or None."""
        if not token:
            return None
        digest = _digest(token)
        row = await self.pool.fetchrow("SELECT * FROM console_sessions WHERE digest = $1", digest)
        if row is None:
            return None
        session = Session(
            row["participant"], row["csrf"], row["created_at"], row["seen_at"], row["lang"], digest
        )
        now = self.clock()
        found = self.participants.get(session.participant)
        if not self._alive(session, now) or found is None or found.status != "active":
            # Expired, or the participant was revoked since sign-in: the session ends with it.
            await self.pool.execute("DELETE FROM console_sessions WHERE digest = $1", digest)
            return None
        if now - session.seen >= TOUCH_S:
            # The idle limit counts in minutes: one write a minute per session, not per request.
            await self.pool.execute(
                "UPDATE console_sessions SET seen_at = $2 WHERE digest = $1", digest, now
            )
            session.seen = now
        return session

    async def set_lang(self, session: Session, lang: str) -> None:
        """Remember the page language a person chose for the rest of the session."""
        session.lang = lang
        await self.pool.execute(
            "UPDATE console_sessions SET lang = $2 WHERE digest = $1", session.digest, lang
        )

    async def close(self, token: str | None) -> None:
        """Sign out: forget the session."""
        if token:
            await self.pool.execute(
                "DELETE FROM console_sessions WHERE digest = $1", _digest(token)
            )


SESSION_KEY = web.RequestKey("session", Session)
"""Where the middleware puts the signed-in session of a request."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_ok(session: Session, given: object) -> bool:
    """Whether a form's CSRF token is the session's (constant-time)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), session.csrf.encode())
