"""The subject taxonomy: `<channel>.<unit>.<dept>.<name>...`, origin participant in tokens 2-3.

Putting the sending participant right after the channel makes every permission a prefix
(`evt.akto.civil.>`), lets a county's stream capture `*.akto.>` subjects without overlap, and
lets the prefecture subscribe to a whole county (`doc.akto.>`). docs/protocol.md documents it.
"""

from __future__ import annotations

import re

from hub.errors import ConfigError

# evt: data events; doc: document exchange; dir: resource directory; adm: administrative acts
# (registry, schemas, grants). Each participant publishes only under its own id on these.
CHANNELS = ("evt", "doc", "dir", "adm")
QUARANTINE_PREFIX = "quarantine"
SYSTEM_PREFIX = "sys"

# Matched with fullmatch: `$` also matches before a final newline, so "akto.civil\n" would
# pass `match` and break every subject built from it.
_TOKEN = r"[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?"
_UNIT_RE = re.compile(_TOKEN)
_PARTICIPANT_RE = re.compile(rf"({_TOKEN})\.({_TOKEN})")
_NAME_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_participant_id(participant: str) -> tuple[str, str]:
    """Split `unit.dept` into its tokens, refusing ids that are not two subject-safe tokens."""
    match = _PARTICIPANT_RE.fullmatch(participant) if isinstance(participant, str) else None
    if match is None:
        raise ConfigError(
            f"participant id {participant!r} must be <unit>.<department>: two lowercase tokens "
            "of letters, digits, '-' or '_' (for example akto.civil)"
        )
    return match.group(1), match.group(2)


def check_unit(unit: str) -> str:
    """Refuse a unit name that is not one subject-safe token (it names streams and folders)."""
    if not isinstance(unit, str) or _UNIT_RE.fullmatch(unit) is None:
        raise ConfigError(
            f"unit {unit!r} must be one lowercase token of letters, digits, '-' or '_' "
            "(for example akto)"
        )
    return unit


def subject_for(channel: str, participant: str, *name: str) -> str:
    """Build a subject on a channel for a participant; name tokens follow."""
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")
    check_participant_id(participant)
    for token in name:
        if not _NAME_TOKEN_RE.fullmatch(token):
            raise ConfigError(f"subject token {token!r} must be letters, digits, '-' or '_'")
    return ".".join((channel, participant, *name))


def event_name(type_name: str) -> str:
    """The subject token for a schema: its simple name in snake case (Notice -> notice)."""
    simple = type_name.rsplit(".", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", simple).lower()


def default_subject(participant: str, type_name: str) -> str:
    """Where `govhub publish` puts an event when no subject is given."""
    return subject_for("evt", participant, event_name(type_name))


def origin_of(subject: str) -> str | None:
    """The participant a subject belongs to, or None if it is not a participant subject."""
    tokens = subject.split(".")
    if len(tokens) < 4 or tokens[0] not in CHANNELS:
        return None
    return f"{tokens[1]}.{tokens[2]}"


def unit_of(participant: str) -> str:
    """The unit token of a participant id (`akto` for `akto.civil`)."""
    return participant.split(".", 1)[0]


def may_publish(participant: str, subject: str) -> bool:
    """Whether a participant may publish on a subject: only under its own id."""
    return origin_of(subject) == participant


def check_subject(subject: str) -> None:
    """Refuse subjects that cannot be published on (wildcards, empty tokens, spaces)."""
    tokens = subject.split(".")
    if any(not t or "*" in t or ">" in t or any(c.isspace() for c in t) for t in tokens):
        raise ConfigError(f"subject {subject!r} must be dot-separated tokens with no wildcards")


def check_filter(subject: str) -> None:
    """Refuse a subject filter the server cannot take: empty tokens, white space, control
    characters, or wildcards that are not whole tokens (`*`, or `>` as the last token).

    Checked before a consumer is created so that a typo is one sentence, not a protocol error.
    """
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        wildcard = token == "*" or (token == ">" and i == len(tokens) - 1)
        if not wildcard and (
            not token or "*" in token or ">" in token or not token.isprintable() or " " in token
        ):
            raise ConfigError(
                f"subject filter {subject!r} must be dot-separated tokens without spaces; "
                "'*' matches one whole token and '>' the rest (evt.akto.>)"
            )
