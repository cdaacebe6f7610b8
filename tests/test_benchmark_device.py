"""`--device` in the benchmarks: parsed once, checked once, named in every table's machine line and command."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import timing

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("models", "overhead", "faces", "cost", "tip_im", "pmask", "pmt", "erasable_mask", "targeted_anonymization")


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    timing.add_device_option(p)
    return p.parse_args(list(argv))


def test_cpu_is_the_default_and_adds_nothing_to_the_command():
    device = timing.device_of(_args())
    assert device == torch.device("cpu")
    assert timing.device_flag(device) == ""
    assert timing.machine_line(2, device).endswith("2 torch threads, device cpu")
    timing.synchronize(device)  # a no-op on the CPU


def test_a_gpu_run_says_so_in_its_command():
    assert timing.device_flag("cuda") == " --device cuda"
    assert timing.device_flag("cuda:1") == " --device cuda:1"


@pytest.mark.parametrize("name,message", [("tpu", "--device 'tpu'"), ("meta", "run on cpu or cuda")])
def test_an_unknown_device_is_a_one_line_error(name, message):
    with pytest.raises(SystemExit, match=message):
        timing.device_of(_args("--device", name))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_gpu_is_a_clear_error_before_any_work():
    with pytest.raises(SystemExit, match="no CUDA device here"):
        timing.device_of(_args("--device", "cuda"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "models", "--device", "cuda", "--out", "/nonexistent/x"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no CUDA device here" in proc.stderr and "Traceback" not in proc.stderr


def test_min_time_waits_for_the_device(monkeypatch):
    waited = []
    monkeypatch.setattr(timing, "synchronize", lambda device: waited.append(device))
    timing.min_time(lambda: None, repeats=3, warmup=1, device="cuda")
    assert waited == ["cuda"] * 4  # after the warm-up, then after each timed run


@pytest.mark.weights
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("suite", SUITES)
def test_each_suite_runs_on_cuda(suite, tmp_path):
    """Each suite's smoke run on the GPU writes its page, and the page names the device."""
    env = dict(os.environ, FACELAB_FAST="1")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", suite, "--device", "cuda", "--repeats", "2",
                           "--threads", "1", "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = [p for p in tmp_path.glob("*.md")]
    assert pages and all("device cuda" in p.read_text() for p in pages)
