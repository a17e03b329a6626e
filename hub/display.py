"""The one way govhub shows text to people: every value that comes from data prints literally.

Nearly everything govhub displays was written by someone else: another department's titles,
names and payloads, an external system's dead letters, a county's reasons. Shown through rich
as it comes, such a value is code, not text: `[/]` crashes the renderer (MarkupError), `[red]`
or `:warning:` restyle or replace what a person reads, an ESC sequence or a carriage return
rewrites the terminal, and a bidirectional override (U+202E) reorders the line so that a file
name or an amount reads as something else. So:

- `console` never interprets markup or emoji codes in any string it is given (print
  arguments, table cells, titles, rules: rich turns each into text through `render_str`, which
  this console overrides), and shows control and bidi characters as visible escapes (`\\x1b`,
  `\\u202e`) through `literal`.
- Styles belong to govhub's own words only and are attached to spans with `styled` and
  `line`, which never parse their input either. No module builds markup strings.
- A last pass escapes the same characters in whatever text reaches the terminal, so a
  renderable built without `literal` cannot write a control sequence either.
- `progress` and `status` give rich's live displays with columns that do not parse markup.

Newlines and tabs are kept: a multi-line abstract or certificate stays readable, and a
newline cannot hide or restyle anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

# Characters that act on the terminal or on the reading order instead of showing themselves:
# C0 controls but tab and newline, DEL, C1 controls, the bidi embeddings, overrides, isolates
# and marks, the Unicode line and paragraph separators, and lone surrogates (what Python makes
# of undecodable bytes in file names).
_INVISIBLE = [
    *(c for c in range(0x20) if c not in (0x09, 0x0A)),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,
    0x2029,
    *range(0xD800, 0xE000),
]
_ESCAPED = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _INVISIBLE}


def literal(value: object) -> str:
    """`value` as text a terminal shows as it is: invisible and reordering characters escaped."""
    return str(value).translate(_ESCAPED)


def styled(value: object, style: str | Style = "") -> Text:
    """`value` as literal text in `style` (a style name of govhub's own, never from data)."""
    return Text(literal(value), style=style)


Part = str | Text | tuple[object, str]


def line(*parts: Part) -> Text:
    """One line from parts: strings (literal), `Text`, or `(value, style)` pairs."""
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            out.append(literal(part[0]), style=part[1])
        else:
            out.append(literal(part))
    return out


def clip(value: object, limit: int) -> str:
    """`value` cut to at most `limit` characters at a word boundary, with `…` when cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


class LiteralConsole(Console):
    """A rich console that turns every string into literal text (see the module docstring)."""

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        """Literal text in `style`; markup, emoji codes and highlighting are never applied."""
        return Text(literal(text), style=style, justify=justify, overflow=overflow)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # The last step before the terminal: text that reached a `Text` without `literal`
        # (a renderable built elsewhere) is escaped here too; rich's own cursor movements are
        # control segments and pass unchanged.
        return super()._render_buffer(
            seg if seg.control else Segment(literal(seg.text), seg.style) for seg in buffer
        )


console = LiteralConsole(highlight=False, markup=False, emoji=False, soft_wrap=True)
"""Standard output for people. Errors go to stderr through `hub.cli.main`."""


def progress(*columns: ProgressColumn | str, **options: Any) -> Progress:
    """A progress display on `console` whose text columns never parse markup.

    Rich's default columns format the task description as markup; a description that names a
    file from another department must not be.
    """
    if not columns:
        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
        )
    cols = [TextColumn(c, markup=False) if isinstance(c, str) else c for c in columns]
    return Progress(*cols, console=options.pop("console", console), **options)


def status(message: object) -> Any:
    """A spinner on `console` with `message` as literal text (rich parses a plain string)."""
    return console.status(styled(message))
