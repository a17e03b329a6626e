"""`govhub console login`: sign in to the web console with a participant's key from this home.

The key never leaves this machine: the helper fetches a one-time challenge from the console,
signs it here, and prints (and opens) the one-time sign-in link the console answers
(hub/console/auth.py explains the flow, docs/security.md why).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import webbrowser
from typing import Any

import click

from hub.cli.common import emit, json_option, settings
from hub.console.auth import sign_challenge
from hub.errors import ConfigError, GovhubError
from hub.keys import KeyStore, resolve_passphrase

TIMEOUT_S = 15.0


class SignInRefused(GovhubError):
    """The console refused the sign-in (its sentence is passed on)."""


def _post(url: str, data: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                why = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                why = exc.reason
        raise SignInRefused(f"the console refused the sign-in: {why}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"cannot reach the console at {url}: {reason}",
            hint="Is `govhub serve` running, and is --url the console's address?",
        ) from None
    if not isinstance(answer, dict):
        raise SignInRefused("the console answered something that is not a JSON object")
    return answer


@click.group("console")
def console_group() -> None:
    """The web console: sign in with a participant's key."""


@console_group.command("login")
@click.option("--as", "as_id", required=True, help="Participant to sign in as (its key signs).")
@click.option("--url", default="http://127.0.0.1:8490", show_default=True, help="The console.")
@click.option("--no-open", is_flag=True, help="Print the link only; do not open a browser.")
@json_option
@click.pass_context
def login(ctx: click.Context, as_id: str, url: str, no_open: bool, as_json: bool) -> None:
    """Sign a one-time challenge and print (and open) the one-time sign-in link."""
    home = settings(ctx).home
    keys = KeyStore(home.keys, resolve_passphrase(home.secrets, create=False))
    key = keys.current(as_id)  # before any request: no key here, nothing to ask
    base = url.rstrip("/").removesuffix("/console")
    challenge = _post(f"{base}/console/login/challenge", {"participant": as_id})
    signed = sign_challenge(key, str(challenge.get("challenge", "")), base)
    answer = _post(
        f"{base}/console/login/answer",
        {"challenge_id": str(challenge.get("challenge_id", "")), **signed},
    )
    link = str(answer.get("link", ""))
    opened = False
    if not no_open and not as_json:
        opened = webbrowser.open(link)
    emit(
        as_json,
        {"participant": as_id, "link": link, "expires_in_s": 120},
        lambda: click.echo(
            f"one-time sign-in link for {as_id} (valid 2 minutes, once):\n{link}"
            + ("\n(opened in your browser)" if opened else "")
        ),
    )


COMMANDS = [console_group]
