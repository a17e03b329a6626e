"""The sharing agent's tokens: who may ask `govhub serve` to sign and seal data as a provider.

`POST /directory/share/{code}` signs `SharedData` events with the provider's key held in the
serve's home. Listening on loopback is not enough to keep that key to its department: any
other program on the machine reaches loopback, and so does a web page in any browser there
(a cross-site form or `fetch` needs no answer to do harm, and DNS rebinding reads answers
too). So the route asks for a token per provider, kept in a file only the home's owner can
read (`<home>/agent-tokens/<participant>.token`, mode 0600): the department's own system
reads that file and sends `Authorization: Bearer <token>`. A browser never sends that header
across origins without a preflight the route does not answer, and a program that cannot read
the file cannot sign as the provider.

`govhub dir agent-token --as ID` creates the file (or replaces it with `--rotate`); the route
reads it on every request, so a rotation takes effect without restarting serve.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from hub.errors import AgentRefused, KeyStoreError
from hub.home import Home
from hub.keys import holds_key
from hub.subjects import check_participant_id
from hub.userfiles import write_private

SCHEME = "Bearer "


def token_path(home: Home, participant: str) -> Path:
    """Where the sharing agent's token for ``participant`` is kept in ``home``."""
    check_participant_id(participant)  # never a path of the caller's choosing
    return home.root / "agent-tokens" / f"{participant}.token"


def issue(home: Home, participant: str, *, rotate: bool = False) -> tuple[Path, bool]:
    """Make sure a token exists for ``participant``; a new one replaces the old with
    ``rotate``. Returns the file and whether a token was written now."""
    path = token_path(home, participant)
    if not holds_key(home.keys, participant):
        # The agent signs with the provider's key: a token where that key is not would only
        # look like a working setup.
        raise KeyStoreError(
            f"this home holds no key for {participant}, so its serve cannot share as it",
            hint="Run the agent in the home that holds the provider's key.",
        )
    if path.exists() and not rotate:
        return path, False
    write_private(path, secrets.token_urlsafe(32).encode() + b"\n")
    return path, True


def check(home: Home, participant: str, authorization: str | None) -> None:
    """Raise AgentRefused unless ``authorization`` carries the token of ``participant``."""
    path = token_path(home, participant)
    try:
        expected = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise AgentRefused(
            f"this home holds no sharing-agent token for {participant}",
            hint=f"Create one with `govhub dir agent-token --as {participant}`.",
        ) from None
    if not authorization or not authorization.startswith(SCHEME):
        raise AgentRefused(
            f"a request to share as {participant} must carry its token "
            "in an `Authorization: Bearer` header"
        )
    presented = authorization[len(SCHEME) :].strip()
    # Constant time: the comparison must not tell a caller how much of a guess was right.
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise AgentRefused(f"the token presented is not the sharing-agent token of {participant}")
