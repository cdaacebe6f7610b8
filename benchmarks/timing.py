"""Small timing helpers: minimum wall time of repeated runs (the least noisy
statistic on a shared machine), the device a benchmark runs on, and the machine
facts every table prints."""
from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

import torch

from facelab.evaluation import Table


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="torch device the models and faces run on: cpu (default, what the committed tables "
                             "use), cuda or cuda:N on a GPU runtime")


def device_of(args) -> torch.device:
    """``args.device`` (default cpu) checked: a CUDA device that is not there is a clear error, not a traceback
    deep inside the first model call."""
    name = str(getattr(args, "device", None) or "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SystemExit(f"--device {name!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: torch sees no CUDA device here (torch {torch.__version__}); "
                             "use --device cpu, or a GPU runtime")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise SystemExit(f"--device {name}: the benchmarks run on cpu or cuda")
    return device


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def min_time(fn: Callable[[], object], repeats: int, warmup: int = 2, device=None) -> float:
    for _ in range(warmup):
        fn()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return best


def device_name(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def machine_line(threads: int, device: torch.device | str = "cpu") -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{threads} torch threads, device {device_name(device)}")


def write_table(path, title: str, command: str, header: list[str], rows: list[list[str]], notes: str = "",
                device: torch.device | str = "cpu") -> str:
    """A results page: title, the command that made it, the machine, then the table (cells as given)."""
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine_line(torch.get_num_threads(), device)}",
             "", Table.from_rows(header, rows).to_markdown()]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    print(text)
    return text


def device_flag(device: torch.device | str) -> str:
    """The ``--device`` part of a table's command line ("" on the default cpu)."""
    device = torch.device(device)
    return "" if device.type == "cpu" else f" --device {device}"
