"""python -m benchmarks SUITE [--repeats N] [--threads N] [--out DIR] [--data offline|lfw|folder:PATH] [--seeds S ...]
[--jobs N] [--device cpu|cuda]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import cost, erasable_mask, faces, pmask, pmt, models, overhead, protect, targeted_anonymization, tip_im
from . import provenance
from .timing import add_device_option, device_of

SUITES = {
    "models": models.main,
    "overhead": overhead.main,
    "faces": faces.main,
    "tip_im": tip_im.main,
    "targeted_anonymization": targeted_anonymization.main,
    "erasable_mask": erasable_mask.main,
    "pmask": pmask.main,
    "pmt": pmt.main,
    "protect": protect.main,
    "cost": cost.main,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("suite", choices=[*SUITES, "all"], nargs="?", default="all")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--data", default="offline",
                   help="face set of the paper benchmarks: offline (default), lfw (internet once) or folder:PATH "
                        "(one sub-folder of photos per identity)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds of the paper benchmarks that measure their claims once per seed "
                        "(tip_im, pmask, pmt, targeted_anonymization, erasable_mask's training seeds; default: each one's own, 0 1 2)")
    p.add_argument("--jobs", type=int, default=None,
                   help="seeds run at once in separate processes, each with --threads threads "
                        "(targeted_anonymization; default 1)")
    add_device_option(p)
    args = p.parse_args(argv)
    args.device = device_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fn in SUITES.items():
        if args.suite in (name, "all"):
            fn(args)
            provenance.after_run(name, args)  # benchmarks/results/provenance.json (not for smoke runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
