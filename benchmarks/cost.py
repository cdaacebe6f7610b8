"""Cost per protected face: every registered method with its own defaults, next to its floor.

``python -m benchmarks cost --threads 2`` runs each method of :func:`facelab.methods.available` on
offline faces against one model at a time (mobileface at its native 112 px, facenet-casia at its
native 160 px), one face at a time (the median of ``SINGLE`` faces) and 8 faces in one batch, and
writes ``benchmarks/results/cost.md``.

The **floor** of a run is the model passes its algorithm cannot avoid, timed bare: the same number of
forward(+backward) passes of the same models at the same batch, with nothing else (no projection,
no loss bookkeeping, no reported state).  Per method, what that is:

* gradient baselines: one forward of the clean face (the reference a dodging loss needs) and one
  forward+backward of the attacked model per update;
* TIP-IM (greedy insertion, k targets): one forward+backward of the k·N candidates and one forward
  of their k·N proposed updates per update (the batched form of Alg. 1);
* Targeted Anonymization: the user's average features (Eq. 3: the user's photos through the victim and
  the authorized model, one forward each) and the clean photo's authorized feature (th_new, Eq. 4),
  then one forward+backward of the victim and one forward of the authorized model per iteration (the
  authorized backward is needed only on the boundary);
* its baseline (Eq. 2): the clean photo through both models, then forward+backward of the victim and
  of the authorized model per iteration;
* PMask and the Fawkes-style cloak: one forward+backward of the team per update;
* PMT: one forward+backward and one forward (the augmented clean image) of the authorized model's
  shallow model per update;
* the reconstruction attack: one forward+backward of the shallow model per update;
* ErasableMask: no face-model pass at all (its cost is its own generator and restorer), so no floor.

A pass is timed as the median of 3 repeats after a warm-up, times the count; a method's run is timed
after an untimed run of 2 updates on the same inputs (:func:`_warm_up`), so both sides are warm, and
at batch 1 as the median of 3 faces: a median on both sides (a minimum against a median would read
this machine's run-to-run noise, ±20 % on one pass, as cost).  A method's ratio to its floor is what
its own bookkeeping, projections and reported state add.  Peak memory is the
resident set's peak above the run's start, tracked by the kernel (``VmHWM``, reset before the run, after
freed heap memory is handed back): what the run itself holds at its busiest, with the models already
loaded, and no sampling thread to slow the run on 2 cores (see :func:`_measure`).  With ``--device cuda`` every time waits for the
GPU's queued work, and peak memory is the CUDA allocator's peak above the start
(``torch.cuda.max_memory_allocated``).
"""
from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

import torch

from facelab import methods
from facelab.models import load

from . import memory
from .timing import device_flag, device_of, synchronize, write_table

MODELS = ("mobileface", "facenet-casia")
AUTHORIZED = "mobilefacenet"  # the second model Targeted Anonymization and its baseline need
SINGLE = 3  # faces timed one at a time
BATCH = 8
TARGETS = 10  # TIP-IM's k


MEMORY_SOURCE = ("the resident set's peak above its start (VmHWM, reset before the run; no sampling thread)"
                 if memory.supported() else "not measured here (needs Linux's /proc/self/clear_refs)")


def _measure(fn: Callable[[], list], device=None) -> tuple[float, float, list]:
    """Seconds, peak MB above the start, and the result of ``fn()``.  On the CPU the kernel tracks the peak
    (:mod:`benchmarks.memory`); on CUDA it is the allocator's peak."""
    if device is not None and torch.device(device).type == "cuda":
        synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        out = fn()
        synchronize(device)
        seconds = time.perf_counter() - t0
        return seconds, max(0, torch.cuda.max_memory_allocated(device) - start) / 2**20, out
    supported = MEMORY_SOURCE.startswith("the resident")
    start = memory.reset_peak() if supported else 0.0
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = max(0.0, memory.peak_mb() - start) if supported else float("nan")
    return seconds, peak, out


def _faces(size: int, device=None):
    """Aligned offline faces at ``size``: probes (one photo of each of the first identities), each
    identity's other photos (up to 4: Targeted Anonymization's user photos), and other people."""
    from facelab.faces import offline_set

    data = offline_set(size, log=lambda *a: None)
    crops = data.crops.to(device)
    by_id: dict[str, list[int]] = {}
    for k, name in enumerate(data.labels):
        by_id.setdefault(name, []).append(k)
    multi = [ids for ids in by_id.values() if len(ids) >= 2][:BATCH]  # the offline set has 8 such identities
    probes = crops[[ids[0] for ids in multi]]
    own = [crops[ids[1:5]] for ids in multi]
    others = crops[[ids[0] for name, ids in by_id.items() if ids not in multi][:TARGETS]]
    return probes, own, others


def _inputs(info, probes, own, others, idx: list[int], authorized, protector) -> dict:
    made = {
        "targets": others,
        "target": others[:1],
        "others": others,
        "user_images": own[idx[0]] if len(idx) == 1 else [own[i] for i in idx],
        "authorized": authorized,
        "protector": protector,
        "attributes": None,  # filled below: each face's own (b = a)
    }
    kw = {n: made[n] for n in info.needs}
    if "attributes" in info.needs:
        from facelab.methods.erasable_mask import own_attributes

        kw["attributes"] = own_attributes(probes[idx])
    return kw


@functools.lru_cache(maxsize=None)
def _bare_pass(model, n: int, size: int, backward: bool, device=None) -> float:
    """Seconds of one bare pass, timed once per (model, batch, size, direction, device) and shared by every
    method whose floor holds it."""
    x = torch.rand(n, 3, size, size).to(device)

    def once():
        if backward:
            xr = x.clone().requires_grad_(True)
            model(xr).sum().backward()
        else:
            with torch.no_grad():
                model(x)

    once()  # warm-up
    synchronize(device)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        once()
        synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@functools.lru_cache(maxsize=None)
def _shallow(model):
    return model.shallow(5)


def _floor(name: str, steps: int, n: int, model, authorized, size: int, targets: int,
           device=None, users: int = 0) -> tuple[float | None, str]:
    """Seconds of the passes the algorithm cannot avoid, and what they are (``users``: Targeted
    Anonymization's user photos of the ``n`` faces, all together)."""
    _pass = functools.partial(_bare_pass, device=device)
    if name == "erasable_mask":
        return None, "none (its own networks)"
    if name in ("fgsm", "ifgsm", "pgd", "mifgsm"):
        return _pass(model, n, size, False) + steps * _pass(model, n, size, True), f"f + {steps} × f+b ({n})"
    if name in ("pmask", "fawkes"):
        return steps * _pass(model, n, size, True), f"{steps} × f+b ({n})"
    if name == "tip_im":
        k = targets * n
        return steps * (_pass(model, k, size, True) + _pass(model, k, size, False)), f"{steps} × (f+b + f) ({k})"
    if name == "targeted_anonymization":
        start = _pass(model, users, size, False) + _pass(authorized, users, size, False) + _pass(authorized, n, size,
                                                                                                   False)
        return (start + steps * (_pass(model, n, size, True) + _pass(authorized, n, size, False)),
                f"users f ({users}) both + authorized f ({n}) + {steps} × (victim f+b + authorized f) ({n})")
    if name == "targeted_anonymization_baseline":
        start = _pass(model, n, size, False) + _pass(authorized, n, size, False)
        return (start + steps * (_pass(model, n, size, True) + _pass(authorized, n, size, True)),
                f"f both + {steps} × (victim f+b + authorized f+b) ({n})")
    if name in ("pmt", "white_box_reconstruction"):
        shallow = _shallow(model)
        fb = _pass(shallow, n, size, True)
        if name == "pmt":
            return steps * (fb + _pass(shallow, n, size, False)), f"{steps} × (shallow f+b + f) ({n})"
        return steps * fb, f"{steps} × shallow f+b ({n})"
    raise KeyError(f"no floor defined for {name}: add it to benchmarks/cost.py")


WARMUP_STEPS = 2

#: where a method's run costs more than 1.3× its floor, the work outside the floor's passes (read in its module);
#: a row above 1.3× whose method is not here says "not explained"
ABOVE_FLOOR = {
    "fgsm": "its one update carries a gradient taken beside x and a final report pass, against a floor of one "
            "forward and one forward+backward",
    "ifgsm": "the last Step's report forward; otherwise per-step projection and sign updates, and this machine's "
             "run-to-run noise (±20 % on one pass)",
    "pgd": "the random start and the last Step's report forward; otherwise per-step projection, and this machine's "
           "run-to-run noise (±20 % on one pass)",
    "mifgsm": "the last Step's report forward; otherwise per-step momentum and projection, and this machine's "
              "run-to-run noise (±20 % on one pass)",
    "tip_im": "per step: the update and gains over k candidates and the distances to all k targets (reported "
              "state); the MMD's self-augmented batch at the first and last Step (γ = 0)",
    "targeted_anonymization": "steps on the wrong side of the boundary (bd = 1) add the authorized backward; "
                              "input diversity's resize; the last Step's report passes of both models",
    "targeted_anonymization_baseline": "the last Step's report passes of both models; input diversity's resize",
    "pmask": "per step: the SSIM hinge (Eq. 7) with its gradient (kornia's Gaussian-window SSIM) and the "
             "convergence test",
    "fawkes": "per step: the DSSIM budget with its gradient (kornia's Gaussian-window SSIM)",
    "pmt": "per step: pooling every shallow layer's features, augmenting the input, and the reported SSIM",
    "white_box_reconstruction": "per step: the total-variation term with its gradient",
}


def _warm_up(info, x, models_, kw) -> None:
    """One untimed run of ``WARMUP_STEPS`` updates on the same inputs: the first pass at a new batch shape
    builds its kernels (oneDNN on a CPU, cuDNN's choice on a GPU), which a floor timed after its own
    warm-up never pays.  Measured before this existed, on a busy machine: Targeted Anonymization's first
    Step took 6.4 s cold and 0.85 s warm on the same 8 faces."""
    short = dict(kw)
    if info.iterations is not None:
        short[info.iterations] = WARMUP_STEPS
    for _ in info(x, models_, **short):
        pass


def _run(info, x, models_, kw, device=None) -> tuple[float, float, int]:
    """Seconds of one full run after its warm-up, its peak MB, and the updates it made."""
    _warm_up(info, x, models_, kw)
    seconds, mb, steps = _measure(lambda: list(info(x, models_, **kw)), device)
    return seconds, mb, len(steps) - 1


def main(args) -> None:
    torch.set_num_threads(args.threads)
    device = device_of(args)
    from facelab.methods.erasable_mask import exists, load as load_em

    protector = load_em(device=device) if exists() else None
    authorized = load(AUTHORIZED, device)
    rows, notes = [], []
    for model_name in MODELS:
        model = load(model_name, device)
        size = model.input_size
        probes, own, others = _faces(size, device)
        for name in methods.available():
            info = methods.get(name)
            if name == "erasable_mask" and protector is None:
                notes.append("erasable_mask: no trained checkpoint in the cache (python -m facelab.methods.erasable_mask)")
                continue
            px = probes
            if name == "erasable_mask":
                px = torch.nn.functional.interpolate(probes, size=(protector.size,) * 2, mode="bilinear",
                                                     antialias=True, align_corners=False)
            for n in (1, BATCH):
                groups = [[i] for i in range(SINGLE)] if n == 1 else [list(range(BATCH))]
                runs = [_run(info, px[g], [model], _inputs(info, px, own, others, g, authorized, protector),
                             device)
                        for g in groups]
                seconds = statistics.median(r[0] for r in runs)
                mb = max(r[1] for r in runs)
                steps = int(statistics.median(r[2] for r in runs))
                users = int(statistics.median(sum(own[i].shape[0] for i in g) for g in groups))
                floor, what = _floor(name, steps, n, model, authorized, size, len(others), device, users)
                per_face = seconds / n
                ratio = "—" if floor is None else f"{seconds / floor:.2f}×"
                why = "" if floor is None or seconds / floor <= 1.3 else ABOVE_FLOOR.get(name, "not explained")
                rows.append([name, f"{model_name} ({size} px)", str(n), str(steps), f"{per_face:.2f}",
                             "—" if floor is None else f"{floor / n:.2f}", ratio, what, f"{mb:.0f}", why])
                print(" | ".join(rows[-1]), flush=True)
    notes_text = (
        f"Every method with its own defaults (`methods.get(name)` and only the inputs it needs: TIP-IM's "
        f"k = {len(others)} targets and PMask's gallery are other people of the offline set, the Fawkes-style "
        f"cloak's target one of them, Targeted Anonymization's user photos the probe's own other photos and its "
        f"authorized model {AUTHORIZED}, ErasableMask the cached checkpoint at its own size and each face's own "
        f"attributes). Batch 1: median of {SINGLE} faces, each alone; batch {BATCH}: {BATCH} faces in one run; "
        f"each run after an untimed {WARMUP_STEPS}-update run on the same inputs (the first pass at a new batch "
        "shape builds its kernels, which the floor's warm passes never pay). "
        "Steps: the updates the run made (PMask stops early when every face has converged). Floor: see the "
        "module docstring of benchmarks/cost.py for each method's passes; `f+b` is a forward and backward pass "
        "to the pixels, `f` a forward pass, the batch in brackets. Peak MB: the timed run's memory, "
        f"{MEMORY_SOURCE}; the models were loaded before.  "
        "Above 1.3×: what the method computes besides the floor's passes, from its module (a start and a "
        "final report weigh most where a pass is short or the steps are few); single-pass floors move by up to a "
        "third between runs on this machine.")
    if notes:
        notes_text += "  \n" + "  \n".join(notes)
    write_table(args.out / "cost.md", "Cost per protected face, every method, next to its floor",
                f"python -m benchmarks cost --threads {args.threads}" + device_flag(device),
                ["method", "model", "faces at a time", "steps", "s / face", "floor s / face", "method / floor",
                 "floor passes", "peak MB", "above 1.3× because"], rows, notes_text, device=device)
