"""Time a FULL_TRANSITIVE compatibility check of a wide record against a long version history.

Run ``python -m hub.bench.compat`` to print the figures. The history grows one defaulted
field per version, so every version is compatible with every other and the check walks all of
them.
"""

from __future__ import annotations

import statistics
import time

from hub.avro.compat import Mode, check


def _field_type(i: int) -> tuple[object, object]:
    """Return (type, default) for field ``i``, cycling through the shapes events use."""
    shapes: list[tuple[object, object]] = [
        ("long", 0),
        ("string", ""),
        (["null", "string"], None),
        ({"type": "enum", "name": f"Status{i}", "symbols": ["OPEN", "CLOSED"]}, "OPEN"),
        (
            {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": f"Item{i}",
                    "fields": [{"name": "code", "type": "string"}, {"name": "qty", "type": "int"}],
                },
            },
            [],
        ),
        ({"type": "map", "values": "double"}, {}),
        ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}, "\u0000"),
        ({"type": "long", "logicalType": "timestamp-millis"}, 0),
        (
            {
                "type": "record",
                "name": f"Address{i}",
                "fields": [
                    {"name": "street", "type": "string"},
                    {"name": "zip", "type": ["null", "string"], "default": None},
                ],
            },
            {"street": ""},
        ),
        ({"type": "fixed", "name": f"Digest{i}", "size": 16}, "\u0000" * 16),
    ]
    return shapes[i % len(shapes)]


def build_history(
    fields: int = 50, versions: int = 20
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Return a ``fields``-field record and its ``versions`` previous versions, oldest first."""

    def version(width: int) -> dict[str, object]:
        members = []
        for i in range(width):
            type_, default = _field_type(i)
            member: dict[str, object] = {"name": f"f{i}", "type": type_}
            if i >= fields - versions:
                member["default"] = default
            members.append(member)
        return {"type": "record", "name": "Event", "namespace": "gov.bench", "fields": members}

    return version(fields), [version(fields - versions + k) for k in range(versions)]


def bench_compat(fields: int = 50, versions: int = 20, rounds: int = 30) -> dict[str, float]:
    """Time ``check(new, previous, FULL_TRANSITIVE)`` and return timings in milliseconds."""
    new, previous = build_history(fields, versions)
    if found := check(new, previous, Mode.FULL_TRANSITIVE):
        raise RuntimeError(f"benchmark history is not compatible: {found[0]}")
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        check(new, previous, Mode.FULL_TRANSITIVE)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "fields": float(fields),
        "versions": float(versions),
        "min_ms": min(timings),
        "median_ms": statistics.median(timings),
        "max_ms": max(timings),
    }


if __name__ == "__main__":
    print(bench_compat())
