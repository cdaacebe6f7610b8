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

A second table: faces per second against batch size.  ``facelab.protect_many``
protects a fixed set of :data:`BATCH_PHOTOS` one-face photos built from the
astronaut (four scales, each as is and mirrored) with MI-FGSM 10 steps on
facenet-casia (scored by facenet-casia only, no re-check, no JPEG check: the
rows time the attack and what batching changes), at batch sizes
:data:`BATCH_SIZES`, in ONE warm process (models and detector loaded by a
first pass; batch sizes interleaved over the repeats so a load spike hits them
alike).  Peak memory per batch size is the process's peak resident set since
that pass began (freed heap handed back by ``malloc_trim``, then the peak reset
through ``/proc/self/clear_refs``), plus the peak CUDA
memory with ``--device cuda``.  ``--device`` places the models and faces of
this part; on cpu the fresh-process rows see no GPU either.
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

from facelab.evaluation import Table

from . import memory
from .timing import device_flag, device_of, synchronize, write_table

ROOT = Path(__file__).resolve().parents[1]
#: the batch-size part: batch sizes, and the astronaut's scales (each photo as is and mirrored)
BATCH_SIZES = (1, 2, 4, 8)
BATCH_SCALES = (1.0, 0.8, 0.65, 1.25)
BATCH_PHOTOS = 2 * len(BATCH_SCALES)


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


def _env(threads: int, device="cpu") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if str(device) == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a child that would pick a GPU by itself stays on the cpu asked for
    return env


def _run(args: list[str], threads: int, device="cpu") -> tuple[float, float, str]:
    """Seconds, peak RSS in MB, and stdout of one fresh `facelab protect` process
    (its own peak, from os.wait4, not the maximum over every child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "facelab.cli", "protect", *args, "--no-progress",
                                 "--device", str(device)], env=_env(threads, device),
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


def _python(code: str, args: list[str], threads: int, device="cpu") -> str:
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(threads, device), check=True,
                          capture_output=True, text=True, cwd=ROOT).stdout.strip().splitlines()[-1]


# -- faces per second against batch size ------------------------------------------------------------


def batch_photos(folder: Path, scales=BATCH_SCALES) -> list[Path]:
    """The batch part's photos: the astronaut at each scale (bicubic), as is and mirrored, one face each."""
    from PIL import Image

    base = Image.fromarray(_astronaut())
    paths = []
    for k, scale in enumerate(scales):
        size = round(512 * scale)
        img = base if size == 512 else base.resize((size, size), Image.BICUBIC)
        for mirrored in (False, True):
            path = folder / f"batch-{k}{'-mirrored' if mirrored else ''}.png"
            (img.transpose(Image.FLIP_LEFT_RIGHT) if mirrored else img).save(path)
            paths.append(path)
    return paths


def _peak_mb(device) -> tuple[float, float | None]:
    """Peak resident set (MB) since :func:`benchmarks.memory.reset_peak`, and the peak CUDA memory allocated
    (MB) on cuda."""
    if str(device).startswith("cuda"):
        import torch

        return memory.peak_mb(), torch.cuda.max_memory_allocated(device) / 2 ** 20
    return memory.peak_mb(), None


def batch_child(argv: list[str] | None = None) -> None:
    """The warm process of the batch part: ``SPEC`` (JSON: photos, model, steps, batch sizes, repeats, device)
    → one JSON line: per batch size, the seconds of each pass, the faces protected and the peak memory."""
    import facelab

    spec = json.loads((argv or sys.argv[1:])[0])
    device = spec["device"]
    kw = dict(models=[spec["model"]], pool=[spec["model"]], steps=spec["steps"], recheck=False, jpeg_quality=None,
              progress=False, device=device)

    def protect_all(batch: int) -> int:
        faces = 0
        for r in facelab.protect_many(spec["photos"], "mifgsm", batch_size=batch, **kw):
            if not r.ok:
                raise RuntimeError(f"{r.name}: {r.error}")
            faces += len(r.report.faces)
        return faces

    protect_all(max(spec["sizes"]))  # warm: models, detector, first-call allocations
    out = {str(b): {"seconds": [], "faces": 0, "rss_mb": 0.0, "cuda_mb": None} for b in spec["sizes"]}
    for _ in range(spec["repeats"]):
        for b in spec["sizes"]:
            row = out[str(b)]
            synchronize(device)
            memory.reset_peak(device)
            t = time.perf_counter()
            row["faces"] = protect_all(b)
            synchronize(device)
            row["seconds"].append(time.perf_counter() - t)
            rss, cuda = _peak_mb(device)
            row["rss_mb"] = max(row["rss_mb"], rss)
            row["cuda_mb"] = cuda if row["cuda_mb"] is None else max(row["cuda_mb"], cuda)
    print(json.dumps(out))


BATCH_CHILD = "import sys; from benchmarks.protect import batch_child; batch_child()"


def batch_rows(photos: list[Path], threads: int, device, *, model: str = "facenet-casia", steps: int = 10,
               sizes=BATCH_SIZES, repeats: int = 3) -> tuple[list[list[str]], dict]:
    """The batch part's table rows (one per batch size) from one warm child process, and its raw numbers."""
    spec = dict(photos=[str(p) for p in photos], model=model, steps=steps, sizes=list(sizes), repeats=repeats,
                device=str(device))
    raw = json.loads(_python(BATCH_CHILD, [json.dumps(spec)], threads, device))
    rows = []
    for b in sizes:
        r = raw[str(b)]
        per_face = [s / r["faces"] for s in r["seconds"]]
        memory = f"{r['rss_mb']:.0f}" + (f" (CUDA {r['cuda_mb']:.0f})" if r["cuda_mb"] is not None else "")
        rows.append([str(b), f"{1 / min(per_face):.2f}", f"{1 / median(per_face):.2f}", f"{min(per_face):.2f}",
                     f"{median(per_face):.2f}", str(len(per_face)), memory])
    return rows, raw


BATCH_HEADER = ["batch size", "faces/s (best)", "faces/s (median)", "s per face (best)", "s per face (median)",
                "runs", "peak memory (MB)"]


def batch_section(rows: list[list[str]], raw: dict, repeats: int, device, scales=BATCH_SCALES) -> str:
    """The batch part as a markdown section: what ran, the table (``rows``), and batching's gain (from ``raw``)."""
    import torch

    device = torch.device(device)
    by_size = {int(b): median(r["seconds"]) / r["faces"] for b, r in raw.items()}  # median seconds per face
    one, most = by_size[min(by_size)], by_size[max(by_size)]
    sides = sorted(round(512 * x) for x in scales)
    return (
        f"## Faces per second against batch size\n\n"
        f"`facelab.protect_many` on {2 * len(scales)} one-face photos (the astronaut at scales "
        f"{', '.join(f'{x:g}' for x in scales)}, each as is and mirrored: {sides[0]}² to {sides[-1]}²), MI-FGSM 10 "
        f"steps on facenet-casia, scored by facenet-casia only, no re-check and no JPEG check, in one warm process "
        f"(a first pass at the largest batch loaded the models and the detector; then {repeats} "
        f"passes over every batch size, interleaved).  A pass reads, detects, attacks and scores every face (no "
        f"file is written); peak memory is the process's peak resident set during the pass (freed heap memory is "
        f"handed back to the system before each pass, so a pass does not inherit a larger batch's cache)"
        + (" and, in brackets, the peak CUDA memory allocated" if device.type == "cuda" else "")
        + f".  Device {device}.\n\n"
        + Table.from_rows(BATCH_HEADER, rows).to_markdown()
        + f"\n\nBatch {max(by_size)} takes {most:.2f} s per face against {one:.2f} s one face at a time "
          f"(×{one / most:.2f} the throughput, medians of {repeats} passes).  Batched faces are the same attack "
          "(bit-identical to `facelab.protect` at batch 1); the faces of a batch share each step's model forward.\n")


def main(args) -> None:
    from PIL import Image

    threads = args.threads
    device = device_of(args)
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
                                   threads, device)
                times.append(s)
                peaks.append(mb)
                if k == 0:
                    reports.append(text)
            rows.append([label, f"{min(times):.1f}", f"{median(times):.1f}", f"{max(times):.1f}", str(len(times)),
                         f"{max(peaks):.0f}"])
            measured.append((median(times), max(peaks)))
        imports = [float(_python(IMPORTS, [], threads, device)) for _ in range(repeats)]
        rows.append(["of which: `import torch` in a fresh process", f"{min(imports):.1f}", f"{median(imports):.1f}",
                     f"{max(imports):.1f}", str(len(imports)), "—"])
        warm = json.loads(_python(WARM, [str(small), str(repeats)], threads, device))
        rows.append(["512×512, 1 face, `facelab.protect()` again in a process that already protected one "
                     "(models and detector loaded; no file written)", f"{min(warm):.1f}", f"{median(warm):.1f}", f"{max(warm):.1f}",
                     str(len(warm)), "—"])
        batch_repeats = min(repeats, 3)
        batch, batch_raw = batch_rows(batch_photos(tmp), threads, device, repeats=batch_repeats)
        load_after = os.getloadavg()[0]
    (cold, _), (_, big_peak) = measured
    batch_notes = batch_section(batch, batch_raw, batch_repeats, device)
    verdicts = (f"Targets: ≤ 5 s for the first row: {'met' if cold <= 5 else 'NOT met'} (median {cold:.1f} s of "
                f"{len(imports)} runs, of which {median(imports):.1f} s importing torch; a further photo in a warm process: "
                f"{median(warm):.1f} s, {'within' if median(warm) <= 5 else 'above'} 5 s); ≤ 2 GB for the 12 MP photo: "
                f"{'met' if big_peak <= 2048 else 'NOT met'} ({big_peak:.0f} MB).")
    notes = (f"The first two rows are each a fresh `python -m facelab.cli protect IN -o OUT.png --models facenet-casia --steps 10` "
             f"process (start-up, model loading, MTCNN, the attack, saving, re-reading and re-detecting the saved "
             f"file, the JPEG check); peak memory is the child's maximum resident set.  {threads} threads "
             f"(OMP_NUM_THREADS).  1-minute load average {load:.1f} before, {load_after:.1f} after"
             + (": the machine was shared, so times are upper bounds of what an idle machine gives" if max(load, load_after)
                > threads + 0.5 else "") + f".\n\n{verdicts}\n\nThe report of the first run:\n\n```\n{reports[0].strip()}\n```\n"
             + f"\n{batch_notes}")
    write_table(args.out / "protect.md", "facelab protect: time and memory",
                f"python -m benchmarks protect --threads {threads}{device_flag(device)}",
                ["photo", "best (s)", "median (s)", "worst (s)", "runs", "peak memory (MB)"], rows, notes, device=device)
