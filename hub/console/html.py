"""The console's one escaping layer: every value from data is literal text, never markup.

`Html` marks a string as markup this module (or a caller built from `h`) produced; everything
else passes through `text` on its way into a page. `text` escapes the five HTML metacharacters
and also makes invisible characters visible: bidirectional overrides and isolates (U+202A..E,
U+2066..9) would otherwise reorder what an auditor reads (a title that shows `gpj.exe` as
`exe.jpg`), and other control characters would hide in plain sight. They are shown as
`⟦U+202E⟧`, so the page says what the data holds. Long values wrap (CSS `overflow-wrap:
anywhere`) rather than being cut: an auditor must see all of a value.

There is no template language and no `|safe`: attributes are built by `h` from plain strings
(escaped with quotes), and no value is ever placed inside a `<script>` or a `style` (the
Content-Security-Policy forbids inline ones anyway; data reaches scripts in `data-*` attributes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Union

# Bidi embedding/override/isolate controls, the marks LRM/RLM/ALM, other C0/C1 controls (but
# not \n and \t, which are shown as white space), zero-width and line/paragraph separators.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
_META = re.compile("[&<>\"']")


class Html(str):
    """A string that is already markup; only this module and `h` create one."""

    __slots__ = ()

    def __add__(self, other: str) -> Html:
        return Html(str.__add__(self, str(render(other))))


Child = Union[Html, str, int, float, None, Iterable["Child"]]  # noqa: UP007 (recursive alias)


def visible(value: str) -> str:
    """`value` with each invisible or reordering character replaced by its ⟦U+XXXX⟧ name."""
    return _INVISIBLE.sub(lambda m: f"⟦U+{ord(m.group()):04X}⟧", value)


def text(value: object) -> Html:
    """Any value as literal text: escaped, invisible characters made visible."""
    return Html(_META.sub(lambda m: _ESCAPES[m.group()], visible(str(value))))


def render(child: Child) -> Html:
    """Markup for a child: `Html` as is, None as nothing, iterables joined, the rest as text."""
    if child is None:
        return Html("")
    if isinstance(child, Html):
        return child
    if isinstance(child, str | int | float):
        return text(child)
    return Html("".join(render(c) for c in child))


_TAG = re.compile(r"[a-z][a-z0-9]*")
_ATTR = re.compile(r"[a-z][a-z0-9_:-]*")
VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})


def h(tag: str, attrs: Mapping[str, object] | None = None, *children: Child) -> Html:
    """An element: `tag` and attribute names are code (checked), attribute values and children
    are data (escaped). A value of True writes a bare attribute; None or False leaves it out."""
    if not _TAG.fullmatch(tag):
        raise ValueError(f"not a tag name: {tag!r}")
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        name = name.rstrip("_").replace("_", "-")
        if not _ATTR.fullmatch(name):
            raise ValueError(f"not an attribute name: {name!r}")
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{text(value)}"')
    parts.append(">")
    if tag in VOID:
        return Html("".join(parts))
    return Html("".join(parts) + render(children) + f"</{tag}>")


def table(headers: Iterable[Child], rows: Iterable[Iterable[Child]], **attrs: object) -> Html:
    """A table of data: every cell is a child (text unless it is `Html`)."""
    head = h("tr", None, [h("th", None, c) for c in headers])
    body = [h("tr", None, [h("td", None, c) for c in row]) for row in rows]
    return h("table", attrs, h("thead", None, head), h("tbody", None, body))


def definitions(items: Iterable[tuple[Child, Child]]) -> Html:
    """A `<dl>` of label and value pairs."""
    return h("dl", None, [[h("dt", None, k), h("dd", None, v)] for k, v in items])


def hidden(name: str, value: str) -> Html:
    """A hidden form field."""
    return h("input", {"type": "hidden", "name": name, "value": value})
