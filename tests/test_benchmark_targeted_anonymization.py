"""The Targeted Anonymization benchmark's seeds: parsed and checked, run in worker processes, combined."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import targeted_anonymization as B

ROOT = Path(__file__).resolve().parent.parent


def _args(*argv: str):
    return B.parser().parse_args(list(argv))


def test_seeds_default_to_three_and_one_seed_is_one_seed(monkeypatch):
    monkeypatch.delenv("FACELAB_FAST", raising=False)
    assert B._seeds(_args()) == [0, 1, 2]
    assert B._seeds(_args("--seed", "4")) == [4]
    assert B._seeds(_args("--seeds", "2", "0")) == [2, 0]


def test_smoke_mode_runs_two_seeds_unless_told(monkeypatch):
    monkeypatch.setenv("FACELAB_FAST", "1")
    assert B._seeds(_args()) == [0, 1]
    assert B._seeds(_args("--seed", "4")) == [4]


@pytest.mark.parametrize("argv,message", [(("--seeds", "1", "1"), "distinct"), (("--jobs", "0"), "at least 1")])
def test_bad_seeds_or_jobs_are_one_line_errors(argv, message):
    a = _args(*argv)
    with pytest.raises(SystemExit, match=message):
        B._jobs(a, len(B._seeds(a)))


def test_jobs_never_exceed_the_seeds():
    assert B._jobs(_args("--jobs", "8"), 3) == 3 and B._jobs(_args(), 3) == 1


def test_combine_keeps_the_first_seed_on_top_and_the_others_by_seed():
    per_seed = {s: {"params": {"seed": s}, "minutes": float(s)} for s in (5, 1, 2)}
    R = B.combine(per_seed, [5, 1, 2])
    assert R["params"]["seed"] == 5 and R["seeds"] == [5, 1, 2]
    assert list(R["other seeds"]) == ["1", "2"] and R["other seeds"]["2"] is per_seed[2]


def _smoke(out: Path, *argv: str) -> dict:
    env = dict(os.environ, FACELAB_FAST="1")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "targeted_anonymization", "--threads", "1",
                           "--out", str(out), *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(out.glob("*.tmp")), "the partial files of a finished run are removed"
    return json.loads((out / "targeted_anonymization_fast.json").read_text())


@pytest.mark.weights
def test_seeds_in_worker_processes_give_what_one_process_gives(tmp_path):
    """The smoke protocol over seeds 0 and 1 in two processes: both seeds on the page, and seed 1's every decision
    the same as when it runs alone in this process's way (one seed, no worker)."""
    both = _smoke(tmp_path / "jobs2", "--seeds", "0", "1", "--jobs", "2")
    alone = _smoke(tmp_path / "alone", "--seeds", "1")
    assert both["seeds"] == [0, 1] and both["params"]["seed"] == 0
    one = both["other seeds"]["1"]
    assert one["params"]["seed"] == 1 and "machine" in one and "minutes" in one
    assert one["trials"] == alone["trials"]
    strip = lambda row: {k: v for k, v in row.items() if k != "seconds"}  # noqa: E731
    for a, sec in alone["authorized"].items():
        mine = one["authorized"][a]
        for key in ("ours", "baseline"):
            assert [strip(r) for r in mine[key]] == [strip(r) for r in sec[key]]
        assert strip(mine["ori"]) == strip(sec["ori"]) and mine["claims"] == sec["claims"]
    page = (tmp_path / "jobs2" / "targeted_anonymization_fast.md").read_text()
    assert "## Every claim over seeds 0, 1" in page and "--jobs 2" in page
