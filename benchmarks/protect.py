"""`facelab protect` end to end: wall time on a 512×512 one-face photo and peak
memory on a 12-megapixel photo with six faces.

Each configuration runs the real command (`python -m facelab.cli protect …`)
in a fresh process, so the times include start-up, model loading, detection,
the attack, saving and the re-check, and the peak memory is the process's own
(``ru_maxrss`` of the child).  Targets from the issue: ≤ 5 s and ≤ 2 GB.

Two more rows split the cold time: importing torch alone (the floor of any
command that runs a model; face detection no longer imports torchvision), and
``facelab.protect`` called again in a process that has already protected a
photo (models and detector loaded: a notebook, or the second photo of one
command).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from statistics import median

import numpy as np

from .timing import write_table


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _group_photo(path: Path) -> None:
    """4000×3000 (12 MP): six copies of the astronaut, each upscaled to 1024², on grey."""
    from PIL import Image

    canvas = Image.new("RGB", (4000, 3000), (120, 120, 120))
    face = Image.fromarray(_astronaut()).resize((1024, 1024), Image.BICUBIC)
    for r in range(2):
        for c in range(3):
            canvas.paste(face if (r + c) % 2 == 0 else face.transpose(Image.FLIP_LEFT_RIGHT),
                         (150 + c * 1300, 200 + r * 1450))
    canvas.save(path)


def _env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def _run(args: list[str], threads: int) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB, and stdout of one fresh `facelab protect` process
    (its own peak, from os.wait4, not the maximum over every child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "facelab.cli", "protect", *args, "--no-progress"], env=_env(threads),
                                stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"facelab protect failed: {err.read().strip()}")
        return seconds, usage.ru_maxrss / 1024.0, out.read()


IMPORTS = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
WARM = """
import json, sys, time
import facelab
path, reps = sys.argv[1], int(sys.argv[2])
facelab.protect(path, models=["facenet-casia"], steps=10)
times = []
for _ in range(reps):
    t = time.perf_counter()
    facelab.protect(path, models=["facenet-casia"], steps=10)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def _python(code: str, args: list[str], threads: int) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(threads), check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]


def main(args) -> None:
    from PIL import Image

    threads = args.threads
    repeats = max(1, min(args.repeats, 5))
    rows, reports, measured = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = tmp / "astronaut.png"
        Image.fromarray(_astronaut()).save(small)
        big = tmp / "group.png"
        _group_photo(big)
        load = os.getloadavg()[0]
        for label, src, extra in [
            ("512×512, 1 face, MI-FGSM 10 steps on facenet-casia; report on 7 models, re-check + JPEG check",
             small, []),
            ("12 MP (4000×3000), 6 faces, same settings", big, []),
        ]:
            times, peaks = [], []
            for k in range(repeats if src is small else 1):
                dst = tmp / f"out-{src.stem}-{k}.png"
                s, mb, text = _run([str(src), "-o", str(dst), "--models", "facenet-casia", "--steps", "10", *extra],
                                   threads)
                times.append(s)
                peaks.append(mb)
                if k == 0:
                    reports.append(text)
            rows.append([label, f"{min(times):.1f}", f"{median(times):.1f}", f"{max(times):.1f}", str(len(times)),
                         f"{max(peaks):.0f}"])
            measured.append((median(times), max(peaks)))
        imports = [float(_python(IMPORTS, [], threads)) for _ in range(repeats)]
        rows.append(["of which: `import torch` in a fresh process", f"{min(imports):.1f}", f"{median(imports):.1f}",
                     f"{max(imports):.1f}", str(len(imports)), "—"])
        warm = json.loads(_python(WARM, [str(small), str(repeats)], threads))
        rows.append(["512×512, 1 face, `facelab.protect()` again in a process that already protected one "
                     "(models and detector loaded; no file written)", f"{min(warm):.1f}", f"{median(warm):.1f}", f"{max(warm):.1f}",
                     str(len(warm)), "—"])
        load_after = os.getloadavg()[0]
    (cold, _), (_, big_peak) = measured
    verdicts = (f"Targets: ≤ 5 s for the first row: {'met' if cold <= 5 else 'NOT met'} (median {cold:.1f} s of "
                f"{len(imports)} runs, of which {median(imports):.1f} s importing torch; a further photo in a warm process: "
                f"{median(warm):.1f} s, {'within' if median(warm) <= 5 else 'above'} 5 s); ≤ 2 GB for the 12 MP photo: "
                f"{'met' if big_peak <= 2048 else 'NOT met'} ({big_peak:.0f} MB).")
    notes = (f"The first two rows are each a fresh `python -m facelab.cli protect IN -o OUT.png --models facenet-casia --steps 10` "
             f"process (start-up, model loading, MTCNN, the attack, saving, re-reading and re-detecting the saved "
             f"file, the JPEG check); peak memory is the child's maximum resident set.  {threads} threads "
             f"(OMP_NUM_THREADS).  1-minute load average {load:.1f} before, {load_after:.1f} after"
             + (": the machine was shared, so times are upper bounds of what an idle machine gives" if max(load, load_after)
                > threads + 0.5 else "") + f".\n\n{verdicts}\n\nThe report of the first run:\n\n```\n{reports[0].strip()}\n```\n")
    write_table(args.out / "protect.md", "facelab protect: time and memory",
                f"python -m benchmarks protect --threads {threads}",
                ["photo", "best (s)", "median (s)", "worst (s)", "runs", "peak memory (MB)"], rows, notes)
