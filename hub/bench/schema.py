"""`govhub bench schema`: cached fingerprint resolution and a wide transitive compatibility check.

The lookup figure is what a receiver pays per event to find the writer schema of a body: a
`SchemaCache.by_fingerprint` on a cache holding the shipped schemas plus a populated registry's
worth of synthetic ones, printed next to a bare `dict.get` on the same keys (the floor). The
check figure is `hub.avro.compat.check` of a 50-field record against 20 prior versions under
FULL_TRANSITIVE, what a registration with a long history costs.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hub.bench.compat import bench_compat
from hub.codec import SchemaCache, schema_from_json
from schemas import SCHEMA_DIR

LOOKUP_TARGET_PER_S = 1_000_000
CHECK_TARGET_MS = 50.0


def populated_cache(extra: int) -> SchemaCache:
    """The shipped schemas plus `extra` distinct synthetic records, as a busy registry holds."""
    cache = SchemaCache.from_directory(SCHEMA_DIR)
    for i in range(extra):
        cache.add(
            schema_from_json(
                {
                    "type": "record",
                    "name": f"Event{i}",
                    "namespace": "bench.dept.v1",
                    "fields": [{"name": "id", "type": "long"}, {"name": f"f{i}", "type": "string"}],
                }
            )
        )
    return cache


def bench_lookups(lookups: int = 1_000_000, schemas: int = 500, rounds: int = 5) -> dict[str, Any]:
    """Best-of-`rounds` lookups per second through the cache and through a bare dict."""
    cache = populated_cache(schemas)
    keys = cache.fingerprints()
    stream = (keys * (lookups // len(keys) + 1))[:lookups]
    raw = {fp: cache.by_fingerprint(fp) for fp in keys}

    def timed(lookup: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for fp in stream:
                lookup(fp)
            best = min(best, time.perf_counter() - start)
        return best

    cached_s = timed(cache.by_fingerprint)
    raw_s = timed(raw.get)
    return {
        "schemas_cached": len(keys),
        "lookups": lookups,
        "govhub_per_s": round(lookups / cached_s),
        "raw_dict_per_s": round(lookups / raw_s),
        "ns_per_lookup": round(cached_s / lookups * 1e9, 1),
        "target_per_s": LOOKUP_TARGET_PER_S,
        "meets_target": lookups / cached_s >= LOOKUP_TARGET_PER_S,
    }


def run_bench(lookups: int, rounds: int, schemas: int) -> dict[str, Any]:
    """Both measurements with the machine they ran on."""
    check = bench_compat(fields=50, versions=20, rounds=rounds)
    return {
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "lookup": bench_lookups(lookups, schemas, rounds=max(1, min(rounds, 5))),
        "check": {
            "mode": "FULL_TRANSITIVE",
            "fields": 50,
            "versions": 20,
            "rounds": rounds,
            "median_ms": round(check["median_ms"], 2),
            "min_ms": round(check["min_ms"], 2),
            "max_ms": round(check["max_ms"], 2),
            "target_ms": CHECK_TARGET_MS,
            "meets_target": check["median_ms"] < CHECK_TARGET_MS,
        },
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(console: Console, result: dict[str, Any]) -> None:
    """Print the figures for a person, govhub next to the raw dict and the targets."""
    lookup, check = result["lookup"], result["check"]
    table = Table("measure", "govhub", "raw", "target", title="bench schema")
    table.add_row(
        f"fingerprint lookups/s ({lookup['schemas_cached']} schemas cached)",
        f"{lookup['govhub_per_s']:,}",
        f"{lookup['raw_dict_per_s']:,} (dict.get)",
        f">= {LOOKUP_TARGET_PER_S:,}",
    )
    table.add_row(
        "FULL_TRANSITIVE check, 50 fields x 20 versions (median ms)",
        f"{check['median_ms']}",
        "",
        f"< {CHECK_TARGET_MS:g}",
    )
    console.print(table)
    m = result["machine"]
    console.print(f"{m['cpu']}, {m['cores']} cores, Python {m['python']}")
