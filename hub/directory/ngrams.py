"""Search grams without a word segmenter: bigrams for Chinese text, trigrams for Latin words.

PostgreSQL's default text-search parser does not segment Chinese, and the embedded server (and
many county servers) has no pg_trgm, so the directory indexes its own grams, as 32-bit keys in
an `int4[]` column with a GIN index (core PostgreSQL, no extension). A query matches an entry
when the entry holds its grams; "人口" (one bigram) therefore finds "常住人口统计", and
"populaton" still finds "population" through most of its trigrams.

Rules, the same for entries and queries: text is NFKC-normalised and case-folded; runs of CJK
characters give their bigrams (a lone character gives itself, so one-character titles and
keywords stay findable); runs of Latin letters and digits give their trigrams (words of one or
two characters give themselves); everything else separates runs.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable

MAX_GRAMS = 4000
"""Grams kept per entry; a very long abstract does not need more to be found."""


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x2FA1F  # extensions B-F and supplements
        or 0x3040 <= code <= 0x30FF  # kana
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
    )


def normalize(text: str) -> str:
    """NFKC and case folding: full-width Latin and digits become ASCII, case is ignored."""
    return unicodedata.normalize("NFKC", text).casefold()


def runs(text: str) -> list[tuple[str, str]]:
    """Split text into ("cjk" | "latin", run) pairs; other characters separate runs."""
    out: list[tuple[str, str]] = []
    kind = ""
    current: list[str] = []
    for char in normalize(text):
        if _is_cjk(char):
            this = "cjk"
        elif char.isalnum():
            this = "latin"
        else:
            this = ""
        if this != kind and current:
            out.append((kind, "".join(current)))
            current = []
        kind = this
        if this:
            current.append(char)
    if current:
        out.append((kind, "".join(current)))
    return out


def run_grams(kind: str, run: str) -> list[str]:
    """The grams of one run: CJK bigrams or Latin trigrams (short runs give themselves)."""
    size = 2 if kind == "cjk" else 3
    if len(run) <= size:
        return [run]
    return [run[i : i + size] for i in range(len(run) - size + 1)]


def grams(text: str) -> list[str]:
    """The distinct grams of a text, in first-seen order."""
    seen: dict[str, None] = {}
    for kind, run in runs(text):
        for gram in run_grams(kind, run):
            seen.setdefault(gram, None)
    return list(seen)


def entry_grams(texts: Iterable[str | None]) -> list[str]:
    """The grams an entry is indexed under: every searchable text of it together, capped."""
    seen: dict[str, None] = {}
    for text in texts:
        if text:
            for gram in grams(text):
                seen.setdefault(gram, None)
    return list(seen)[:MAX_GRAMS]


def query_grams(query: str) -> list[str]:
    """The grams of a search query (empty if it holds no letters, digits or CJK characters)."""
    return grams(query)


def gram_key(gram: str) -> int:
    """The 32-bit key PostgreSQL indexes a gram under.

    An `int4[]` of keys is a third of the size of the `text[]` of grams, so the rows a search
    touches fit in far fewer pages; two grams sharing a key (odds about 1 in 4 billion per
    pair) can only add a false match, which the ranking's substring check then ranks last.
    """
    return int.from_bytes(
        hashlib.blake2b(gram.encode(), digest_size=4).digest(), "big", signed=True
    )


def gram_keys(values: Iterable[str]) -> list[int]:
    """The distinct keys of grams, in order."""
    return list(dict.fromkeys(gram_key(g) for g in values))
