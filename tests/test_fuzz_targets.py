"""The coverage-guided fuzz targets (tests/fuzz/) run briefly in the suite from their seeds.

Each run is bounded by a number of inputs, not by time, so a slow machine makes it slower but
never makes it fail; libFuzzer's random seed is fixed, so a run is the same run every time. A
long hunt is run by hand (docs/security.md, "Hostile input").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris (coverage-guided fuzzing) builds on Linux only")

FUZZ = Path(__file__).parent / "fuzz"
RUNS = {"envelope": 2000, "note": 1000}


def _run(target: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FUZZ / f"fuzz_{target}.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize("target", sorted(RUNS))
def test_the_fuzz_target_runs_from_its_committed_seeds_without_a_crash(
    target: str, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"  # libFuzzer adds what it finds: never to the committed one
    shutil.copytree(FUZZ / "corpus" / target, corpus)
    result = _run(
        target, f"-atheris_runs={RUNS[target]}", "-seed=1", f"-artifact_prefix={tmp_path}/",
        str(corpus), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {RUNS[target]} " in result.stderr


@pytest.mark.parametrize("target", sorted(RUNS))
def test_the_committed_seeds_are_the_honest_inputs_the_target_makes(
    target: str, tmp_path: Path
) -> None:
    result = _run(target, "--seeds", str(tmp_path / "seeds"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    made = {p.name: p.read_bytes() for p in (tmp_path / "seeds").iterdir()}
    committed = {p.name: p.read_bytes() for p in (FUZZ / "corpus" / target).iterdir()}
    assert made == committed
