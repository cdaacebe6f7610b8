"""Face pipeline timings: load_image per photo, the offline set cold and warm,
a warm ``facelab fetch`` check.  Numbers quoted in docs/faces.md come from here.

Cold package downloads are not timed: they depend on the registry and the
network, not on facelab."""
from __future__ import annotations

import os
import statistics
import time

import torch

from .timing import device_flag, device_of, min_time, write_table


def _photo_paths() -> list:
    from facelab.faces.offline import entry_path, manifest

    seen = {}
    for e in manifest()["faces"]:
        if e.get("time") is None:  # photos, not video frames (those are prepared PNGs)
            seen.setdefault(e["member"], entry_path(e))
    return list(seen.values())


def _per_photo(paths, threads: int, device) -> tuple[float, float]:
    from facelab.faces import load_image

    torch.set_num_threads(threads)
    load_image(paths[0], device=device)  # detector warm-up
    times = []
    for p in paths:
        t = time.perf_counter()
        load_image(p, device=device)  # landmarks come back as numpy: nothing is left queued on a GPU
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main(args) -> None:
    from facelab import cache
    from facelab.faces import FACE_PACKAGES, offline_set
    from facelab.faces.offline import _build
    from facelab.models.packages import DEFAULT_PACKAGES

    threads = args.threads
    device = device_of(args)
    load_at_start = os.getloadavg()[0]
    paths = _photo_paths()
    rows = []
    for n in sorted({1, threads}):
        med, worst = _per_photo(paths, n, device)
        rows.append([f"`load_image` (MTCNN + alignment), {n} thread{'s' * (n > 1)}",
                     f"{med:.3f} s median, {worst:.2f} s slowest", f"{len(paths)} photos"])
    torch.set_num_threads(threads)
    t = time.perf_counter()
    n_faces = len(_build(112, log=lambda *a: None)["crops"])
    rows.append(["first `offline_set(112)` (detect + align every face, not written)",
                 f"{time.perf_counter() - t:.1f} s", f"{n_faces} faces"])
    offline_set(112)
    rows.append(["later `offline_set(112)` (cached crops)",
                 f"{min_time(lambda: offline_set(112), repeats=args.repeats) * 1e3:.1f} ms", "min of repeats"])
    pkgs = list(DEFAULT_PACKAGES) + list(FACE_PACKAGES)
    rows.append(["warm `facelab fetch` check (cache complete)",
                 f"{min_time(lambda: cache.fetch_all(pkgs, log=lambda *a: None), repeats=args.repeats) * 1e3:.1f} ms",
                 f"{len(pkgs)} packages"])
    write_table(args.out / "faces.md", "Face pipeline timings", f"python -m benchmarks faces --repeats {args.repeats}" + device_flag(device),
                ["step", "time", "n"], rows,
                "Photos are the offline set's registry photos (most about 1920 px wide). MTCNN runs many small "
                "tensor ops, so a busy machine slows it far more than it slows the face models. "
                f"Load average (1 min) when this run started: {load_at_start:.1f}. With `--device`, only "
                "`load_image` runs there: the offline set is built (and cached) on the CPU.", device=device)
