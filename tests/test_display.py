"""The rendering layer: whatever a value holds, a terminal shows it as text and nothing else."""

from __future__ import annotations

import io
import re
import tokenize
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.table import Table
from rich.text import Text

from hub.display import LiteralConsole, clip, line, literal, progress, styled

ROOT = Path(__file__).resolve().parent.parent
# f-strings are STRING tokens up to Python 3.11 and FSTRING_MIDDLE parts from 3.12.
STRINGS = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _is_invisible(c: str) -> bool:
    """Written out independently of hub.display: what must never reach a terminal raw."""
    if c in "\t\n":
        return False
    return unicodedata.category(c) in ("Cc", "Cs") or c in (
        "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )


def _terminal(width: int = 200) -> tuple[LiteralConsole, io.StringIO]:
    out = io.StringIO()
    console = LiteralConsole(
        file=out, width=width, force_terminal=True, color_system="truecolor", markup=False
    )
    return console, out


def _shown(out: io.StringIO) -> str:
    """What a person sees: the output without the console's own colour sequences."""
    return re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())


def test_literal_escapes_controls_bidi_and_separators_but_keeps_text() -> None:
    assert literal("a\x1b[31mb") == "a\\x1b[31mb"
    assert literal("x\ry") == "x\\x0dy"
    assert literal("invoice\u202efdp.exe") == "invoice\\u202efdp.exe"
    assert literal("\x7f\x9b\u2028") == "\\x7f\\x9b\\u2028"
    assert literal("\udcff") == "\\udcff"
    assert literal("通知 [/] :warning:\tend\n") == "通知 [/] :warning:\tend\n"
    assert literal(12) == "12"


def test_markup_emoji_codes_and_escapes_print_as_written() -> None:
    console, out = _terminal()
    console.print("[/] [red]红[/red] :warning: [link=http://x]y[/link]")
    assert _shown(out) == "[/] [red]红[/red] :warning: [link=http://x]y[/link]\n"


def test_table_cells_and_titles_are_literal() -> None:
    console, out = _terminal()
    table = Table("[bold]h", title="[/]title")
    table.add_row("[red]cell\x1b]0;pwned\x07")
    console.print(table)
    shown = _shown(out)
    assert "[/]title" in shown and "[bold]h" in shown
    assert "[red]cell\\x1b]0;pwned\\x07" in shown


def test_text_built_without_literal_is_escaped_on_the_way_out() -> None:
    console, out = _terminal()
    console.print(Text("raw\x1b[2J\u202e", style="bold"))
    assert "raw\\x1b[2J\\u202e" in _shown(out)
    assert "\x1b[2J" not in out.getvalue()


def test_styles_apply_to_govhubs_words_only() -> None:
    console, out = _terminal()
    console.print(line(("OK", "green"), ": [red]", styled("[/]", "bold")))
    raw = out.getvalue()
    assert _shown(out) == "OK: [red][/]\n"
    assert "\x1b[32mOK" in raw  # green applied to the label, nothing parsed from the data


def test_progress_descriptions_are_not_markup() -> None:
    console, out = _terminal()
    with progress(console=console, transient=False) as bar:
        task = bar.add_task("fetching [/]x.txt", total=2)
        bar.update(task, completed=2)
    assert "fetching [/]x.txt" in _shown(out)


def test_clip_cuts_at_a_word_and_says_so() -> None:
    assert clip("short", 10) == "short"
    assert clip("the reason was cut in the middle of a word", 20) == "the reason was cut…"
    assert len(clip("x" * 100, 10)) == 10


@given(st.text())
def test_any_text_in_any_place_shows_literally_and_nothing_invisible_escapes(
    value: str,
) -> None:
    console, out = _terminal(width=10_000)
    table = Table("column", title=value)
    table.add_row(value)
    console.print(value)
    console.print(table)
    console.print(line((value, "bold"), value))
    shown = _shown(out)
    assert not [c for c in shown if _is_invisible(c) and c != "\x1b"]
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    if "\n" not in value and "\t" not in value:
        assert literal(value).strip() in shown


def test_no_module_builds_rich_markup_or_its_own_console() -> None:
    # Markup around data is what crashed readers: govhub's own modules attach styles with
    # hub.display only, so no string literal anywhere may hold a markup tag.
    tag = re.compile(r"\[/?(bold|red|green|yellow|cyan|magenta|dim|italic|link)\b[^\]]*\]|\[/\]")
    found = []
    for path in sorted([*ROOT.glob("hub/**/*.py"), *ROOT.glob("connectors/*.py")]):
        if path.name == "display.py":  # its docstring names what it guards against
            continue
        with path.open("rb") as fp:
            for tok in tokenize.tokenize(fp.readline):
                if tok.type in STRINGS and tag.search(tok.string):
                    found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}")
        text = path.read_text(encoding="utf-8")
        if re.search(r"\bConsole\(|from_markup|markup=True", text):
            found.append(f"{path.relative_to(ROOT)}: builds a console or parses markup")
    assert not found
