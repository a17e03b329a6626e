"""Strict reading of a JSON object posted by a department system (the webhook's body).

Python's json is lenient where a lenient reading changes what the caller meant, or fails later
where it cannot be explained: it reads UTF-16 and UTF-32, NaN and Infinity, keeps the last of
a key given twice, and fails with RecursionError or a ValueError on deep nesting and
very long numbers. `read_object` refuses each of these with an InputError of one sentence.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hub.plugin import InputError

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays a posted record may have: department records are
shallow, and the bound keeps the mapping, Avro and dead-letter JSON far from Python's
recursion limit."""

MAX_DIGITS = 64
"""Most digits of an integer in a posted record: more than any Avro long (19) or decimal
needs, and far below Python's int parsing limit (4,300 digits, a ValueError)."""


class _NotPlainJson(ValueError):
    """Raised by the parser hooks of read_object; its text is the sentence for the caller."""


def _no_constant(name: str) -> Any:
    raise _NotPlainJson(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotPlainJson(f"the number {text[:20]} is too large to store")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _NotPlainJson(
            f"a number has {len(text.lstrip('-')):,} digits; numbers are limited to {MAX_DIGITS}"
        )
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice would silently keep the last value: what the caller sent is unclear.
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _NotPlainJson(f"the key {key[:40]!r} appears twice in one object")
        value[key] = item
    return value


def read_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InputError with one sentence saying what is wrong.

    Strict where Python's json is lenient, because a lenient reading changes what the caller
    meant or fails later where it cannot be explained: only UTF-8, no NaN or Infinity, no
    number too large, no key twice, at most MAX_DEPTH levels of nesting.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the body is not UTF-8 text (byte {exc.start:,} is not)") from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except _NotPlainJson as exc:
        raise InputError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(value, dict):
        raise InputError("the body must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise InputError(f"the JSON is nested more than {MAX_DEPTH} levels deep")
    return value


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
