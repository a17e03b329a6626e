"""Hostile inputs for the property tests: mutations of valid bytes, text, JSON, TOML and records.

Every parser of another party's bytes is tested the same way (tests/test_hostile_*.py): take a
valid input, damage it (flip, cut, extend, splice, swap a value for one of the wrong type, a huge
or negative number, NaN, deep nesting, non-UTF-8, surrogates, control characters), and check
that the only exceptions escaping are the parser's typed errors, each one clear sentence.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from hub.errors import GovhubError

# Characters that break parsers: line ends, NUL and other controls, bidi overrides, a BOM,
# lone surrogates, non-ASCII digits (`\d` and `isdigit` match them, `int` may not), and the
# separators the formats here use.
NASTY_CHARS = [
    "\x00", "\r", "\n", "\r\n", "\t", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "\u202e",
    "\u200b", "\ufeff", "\ud800", "\udfff", "\ufffd", "\U0001f600", "é", "中", "٣", "²", "Ⅻ",
    "—", "+", "/", ":", ".", " ", "\\", '"', "'", "[", "{", "=", "#", "%", "$", "*", ">", "\x80",
]  # fmt: skip
NASTY_INTS = [
    0, -1, 1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1,
    2**63, 2**64, -(2**63) - 1, 10**30, -(10**30),
]  # fmt: skip
NASTY_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.5, -1.5]

nasty_chars = st.sampled_from(NASTY_CHARS)
nasty_text = st.lists(st.one_of(nasty_chars, st.characters()), max_size=12).map("".join)
any_text = st.one_of(st.text(max_size=40), nasty_text)
ints = st.one_of(st.sampled_from(NASTY_INTS), st.integers())
floats = st.one_of(st.sampled_from(NASTY_FLOATS), st.floats())


def scaled(fraction: float) -> settings:
    """Run an expensive property with a fraction of the profile's examples (at least 10)."""
    return settings(max_examples=max(10, int(settings.default.max_examples * fraction)))


# --- bytes and text -------------------------------------------------------------------------


@st.composite
def mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """`valid` damaged by one to three flips, cuts, extensions, insertions or splices."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "extend", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif kind == "insert":
            data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=8), _nasty_bytes))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


_nasty_bytes = st.sampled_from(
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r\n", b"\n\n", b"\xc3\x01", b"\x80" * 3]
)


@st.composite
def mutated_text(draw: st.DrawFn, valid: str) -> str:
    """`valid` damaged at the character level, with the characters parsers trip on."""
    chars = list(valid)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "cut", "extend", "insert", "delete", "case"]))
        at = draw(st.integers(0, len(chars)))
        piece = list(draw(st.one_of(nasty_text, st.text(min_size=1, max_size=4))))
        if kind == "replace" and chars:
            chars[min(at, len(chars) - 1)] = draw(nasty_chars)
        elif kind == "cut":
            del chars[at:]
        elif kind == "extend":
            chars += piece
        elif kind == "insert":
            chars[at:at] = piece
        elif kind == "delete":
            del chars[at : at + draw(st.integers(1, 8))]
        else:
            chars = list("".join(chars).swapcase())
    return "".join(chars)


def hostile_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    """Mutations of `valid`, and now and then bytes with no relation to it at all."""
    return st.one_of(mutated_bytes(valid), st.binary(max_size=128))


def hostile_text(valid: str) -> st.SearchStrategy[str]:
    """Mutations of `valid`, and now and then any text at all."""
    return st.one_of(mutated_text(valid), any_text)


# --- JSON-shaped values ---------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), ints, floats, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=10,
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*here, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*here, index))


def _replace(value: Any, path: tuple[Any, ...], change: Callable[[Any], Any]) -> Any:
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        replaced = _replace(value[head], rest, change)
        if replaced is _DELETE:
            del out[head]
        else:
            out[head] = replaced
        return out
    items = list(value)
    replaced = _replace(value[head], rest, change)
    if replaced is _DELETE:
        del items[head]
    else:
        items[head] = replaced
    return items


_DELETE = object()


def nested(depth: int) -> Any:
    """A list nested `depth` deep (built without recursion)."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated_json(draw: st.DrawFn, valid: Any, values: st.SearchStrategy[Any] = json_values) -> Any:
    """`valid` (a JSON-shaped value) with one to three values swapped, dropped or added."""
    doc = valid
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        kind = draw(st.sampled_from(["value", "delete", "add", "wrap", "text", "deep"]))
        if kind == "value" or (not path and kind == "delete"):
            new = draw(values)
            doc = _replace(doc, path, lambda _old, new=new: new)
        elif kind == "delete":
            doc = _replace(doc, path, lambda _old: _DELETE)
        elif kind == "add":
            key, new = draw(any_text), draw(values)

            def add(old: Any, key: str = key, new: Any = new) -> Any:
                if isinstance(old, dict):
                    return {**old, key: new}
                if isinstance(old, list):
                    return [*old, new]
                return old

            doc = _replace(doc, path, add)
        elif kind == "wrap":
            doc = _replace(doc, path, lambda old: [old])
        elif kind == "deep":
            # Deep enough to matter, shallow enough for the strategies' own recursion; the
            # parsers' limits are tested with nesting built as text (deep_json_text).
            depth = draw(st.sampled_from([50, 250]))
            doc = _replace(doc, path, lambda _old, depth=depth: nested(depth))
        else:

            def retext(old: Any) -> Any:
                return draw(hostile_text(old)) if isinstance(old, str) else old

            doc = _replace(doc, path, retext)
    return doc


def deep_json_text(depth: int) -> str:
    """JSON text nested far deeper than the standard library's recursion limit allows."""
    return "[" * depth + "]" * depth


# --- TOML -----------------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.booleans(),
    ints,
    floats,
    any_text,
    st.dates(),
    st.times(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)
    ),
    max_leaves=8,
)

_TOML_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"'}


def _toml_string(text: str) -> str:
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif c in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF:
            out.append(f"\\u{ord(c):04X}")  # a surrogate escape is itself invalid TOML
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """One TOML value (tables inline), for writing mutated config data back as TOML text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}"
                               for k, v in value.items() if v is not None) + "}"  # fmt: skip
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_text(table: dict[str, Any]) -> str:
    """A TOML document of `key = value` lines (nested tables inline)."""
    return "".join(
        f"{_toml_string(str(k))} = {toml_value(v)}\n" for k, v in table.items() if v is not None
    )


# --- Avro records that fit a schema ---------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _bounded(limit: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, -1, limit - 1, -limit]), st.integers(-limit, limit - 1))


def avro_values(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values that fit a (fastavro-parsed) Avro schema: what a hostile sender can still send."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of([avro_values(branch, named) for branch in schema])
    if isinstance(schema, str):
        if schema in named:
            return avro_values(named[schema], named)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return avro_values(kind, named)
    if "name" in schema and kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    logical = schema.get("logicalType")
    if logical in ("timestamp-micros", "timestamp-millis"):
        return st.datetimes(
            min_value=dt.datetime(1, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=st.just(dt.UTC),
        ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
    if logical == "date":
        return st.dates()
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": _bounded(2**31),
        "long": _bounded(2**63),
        "float": st.floats(width=32),
        "double": st.floats(),
        "bytes": st.binary(max_size=40),
        "string": st.text(st.characters(exclude_categories=["Cs"]), max_size=24),
    }  # fmt: skip
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    if kind == "array":
        return st.lists(avro_values(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=8), avro_values(schema["values"], named), max_size=3
        )
    if kind == "record":
        fields = {f["name"]: avro_values(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind in named:
        return avro_values(named[kind], named)
    raise ValueError(f"no strategy for Avro type {kind!r}")


# --- what may escape ------------------------------------------------------------------------

# Text that only a Python program or a library would write: what a person must never be shown.
_LIBRARY_TEXT = re.compile(
    r"<class |Traceback|codec can't|object has no attribute|object is not|unhashable type|"
    r"NoneType|invalid literal for|Invalid isoformat|not subscriptable|positional argument|"
    r"keyword argument|recursion depth|\(type |Exceeds the limit|datetime\.\w+\(|"
    r"\b(?:Value|Type|Key|Index|Attribute|UnicodeDecode|UnicodeEncode|Recursion|Overflow|EOF|"
    r"Struct|SchemaResolution|TOMLDecode|JSONDecode|Assertion|Runtime|NotImplemented)Error\b"
)


def assert_clear(exc: BaseException) -> None:
    """A typed error's message is a sentence for a person, with no library or Python text."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} has an empty message"
    leaked = _LIBRARY_TEXT.search(message)
    assert leaked is None, f"{type(exc).__name__} shows library text {leaked.group()!r}: {message}"


def only(*allowed: type[BaseException]) -> Callable[[Callable[[], Any]], Any]:
    """A runner of `call()` that returns its result, or the exception if it is one of `allowed`
    with a clear message; any other exception propagates and fails the property."""

    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except allowed as exc:
            assert_clear(exc)
            return exc

    return run


typed = only(GovhubError)
"""Run a call whose only permitted failures are govhub's typed errors."""
