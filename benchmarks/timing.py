"""Small timing helpers: minimum wall time of repeated runs (the least noisy
statistic on a shared machine), plus the machine facts every table prints."""
from __future__ import annotations

import os
import platform
import time
from typing import Callable

import torch

from facelab.evaluation import Table


def min_time(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def machine_line(threads: int) -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{threads} torch threads, device cpu")


def write_table(path, title: str, command: str, header: list[str], rows: list[list[str]], notes: str = "") -> str:
    """A results page: title, the command that made it, the machine, then the table (cells as given)."""
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine_line(torch.get_num_threads())}", "",
             Table.from_rows(header, rows).to_markdown()]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    print(text)
    return text
