"""Evaluation of Targeted Anonymization as in the paper's §4.1–4.2.

Protocol (per trial, one identity): one photo is **protected** (x0); four
photos of that person *including x0* give the **average features** (Eq. 3);
one photo not among them is the **validation** probe.  With the protected
photo as the gallery sample we measure

* the authorized model's **TAR**: sim_A(ta, validation) ≥ th_A;
* its **FAR**: sim_A(ta, y) ≥ th_A over every photo y of every *other*
  identity in the set (the paper: "matching the generated samples with the
  random sample from other people");
* each target model's **recognition rate**: sim_T(ta, validation) ≥ th_T.

Thresholds are each model's calibrated threshold at a stated FAR
(:func:`model_thresholds`).  On facelab's offline set the only identities
with ≥ 5 photos are the two video subjects, so most trials come from their
frames (different frames as protected photo, random average/validation
picks): results are correlated and the set is small — every table says so.

Helpers here are used by ``benchmarks/targeted_anonymization.py`` and by
``notebooks/01_targeted_anonymization.ipynb`` (including
:func:`timeline_figure`, the paper-specific plot of a run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import steps as _steps
from ..methods.targeted_anonymization import targeted_anonymization, targeted_anonymization_baseline
from ..models.calibration import NotCalibratedError, calibrate_model, pair_indices, table
from ..models.zoo import model_device


@dataclass(frozen=True)
class Trial:
    """One protected photo: indices into the face set."""

    identity: str
    protected: int
    average: tuple[int, ...]  # includes ``protected`` (the paper's four images)
    validation: int


def make_trials(labels: Sequence[str], n_average: int = 4, per_identity: int = 8, min_images: int = 3,
                seed: int = 0) -> list[Trial]:
    """Seeded trials: for each identity with ≥ ``min_images`` photos, up to
    ``per_identity`` trials with distinct protected photos; the average uses
    x0 plus up to ``n_average`` − 1 other photos (fewer when the identity has
    fewer than ``n_average`` + 1 photos — one is always kept for validation)."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    trials = []
    for name in dict.fromkeys(labels):
        members = np.flatnonzero(np.array(labels) == name)
        if len(members) < max(min_images, 2):
            continue
        for x0 in rng.permutation(members)[:per_identity]:
            others = rng.permutation(members[members != x0])
            k = min(n_average - 1, len(others) - 1)
            trials.append(Trial(name, int(x0), (int(x0), *map(int, others[:k])), int(others[k])))
    return trials


def model_thresholds(models: Sequence[nn.Module], far: float, crops: torch.Tensor | None = None,
                     labels: Sequence[str] | None = None) -> dict[str, dict]:
    """Per model: ``{"th", "far", "source", "impostor_pairs"}``.

    Uses the calibrated threshold (``facelab calibrate``) when there is one;
    otherwise calibrates on the given labelled crops (all pairs) and says so.
    """
    out = {}
    for m in models:
        try:
            th = m.threshold(far)
            entry = table()["models"].get(m.name, {})
            data = entry.get("data", {})
            out[m.name] = {"th": th, "far": far, "source": f"calibrated ({data.get('set', '?')} set)",
                           "impostor_pairs": data.get("impostor_pairs")}
        except NotCalibratedError:
            if crops is None:
                raise
            cal = calibrate_model(m, crops, labels, fars=(far,))
            out[m.name] = {"th": cal["thresholds"][f"{far:g}"], "far": far,
                           "source": "calibrated here on the evaluation set (no stored calibration)",
                           "impostor_pairs": int(len(pair_indices(labels)[1]))}
    return out


def resolvable_far(n_impostor_pairs: int, wanted: float = 1e-3, fallback: float = 1e-2, min_accepted: int = 3) -> float:
    """``wanted`` if the data has at least ``min_accepted`` impostor pairs above
    its threshold (n·FAR ≥ 3), else ``fallback``."""
    return wanted if n_impostor_pairs * wanted >= min_accepted else fallback


def protect(trials: Sequence[Trial], crops: torch.Tensor, *, victim, authorized, method: str = "ours",
            batch: int = 32, **kw) -> torch.Tensor:
    """Protected photos (N,3,S,S) for every trial; ``method`` "ours"
    (:func:`targeted_anonymization`) or "baseline"; ``kw`` go to the method."""
    dev = model_device(authorized)
    out = []
    for s in range(0, len(trials), batch):
        chunk = trials[s : s + batch]
        x = crops[[t.protected for t in chunk]].to(dev)
        users = [crops[list(t.average)].to(dev) for t in chunk]
        if method == "ours":
            gen = targeted_anonymization(x, users, victim=victim, authorized=authorized, **kw)
        elif method == "baseline":
            gen = targeted_anonymization_baseline(x, victim=victim, authorized=authorized, **kw)
        else:
            raise ValueError(f"method must be 'ours' or 'baseline', got {method!r}")
        out.append(_steps.run(gen).x.cpu())
    return torch.cat(out)


class Embeddings:
    """Embeddings of the face set per model, computed once."""

    def __init__(self, crops: torch.Tensor):
        self.crops = crops
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, model: nn.Module) -> torch.Tensor:
        if model.name not in self._cache:
            with torch.no_grad():
                self._cache[model.name] = torch.cat([model(self.crops[k : k + 32]) for k in range(0, len(self.crops), 32)])
        return self._cache[model.name]


def evaluate(images: torch.Tensor, trials: Sequence[Trial], labels: Sequence[str], emb: Embeddings, *,
             authorized: nn.Module, targets: Sequence[nn.Module], thresholds: Mapping[str, dict]) -> dict:
    """TAR and FAR of the authorized model and each target's recognition
    rate, with ``images`` (one per trial) as the gallery samples.
    ``target_accepts[name]`` keeps each target's per-trial decisions, for
    paired comparisons between settings (:func:`paired_sign_test`)."""
    labels = np.array(labels)
    val = [t.validation for t in trials]
    out: dict = {"n": len(trials)}
    with torch.no_grad():
        for m in [authorized, *targets]:
            e = m(images)
            th = thresholds[m.name]["th"]
            accepted = (m.similarity(e, emb(m)[val]) >= th).cpu()
            rate = float(accepted.float().mean())
            if m is authorized:
                out["tar"] = rate
                acc, n = 0, 0
                for k, t in enumerate(trials):
                    others = np.flatnonzero(labels != t.identity)
                    s = m.similarity(e[k : k + 1], emb(m)[others])
                    acc += int((s >= th).sum())
                    n += len(others)
                out["far"], out["far_n"], out["far_accepted"] = acc / n, n, acc
            else:
                out.setdefault("targets", {})[m.name] = rate
                out.setdefault("target_accepts", {})[m.name] = [bool(v) for v in accepted]
    tg = out.get("targets", {})
    out["target_mean"] = float(np.mean(list(tg.values()))) if tg else float("nan")
    return out


def paired_sign_test(a: dict, b: dict) -> dict:
    """Exact two-sided sign (McNemar) test of two settings' target decisions,
    paired by (trial, target model): ``only_a`` decisions recognised under
    ``a`` but not ``b``, ``only_b`` the reverse, ``n`` all decisions, ``p``.

    Trials of one video subject are correlated, so ``p`` is optimistic."""
    from ..metrics.claims import sign_test

    only_a = only_b = n = 0
    for name, acc_a in a["target_accepts"].items():
        for x, y in zip(acc_a, b["target_accepts"][name]):
            only_a += x and not y
            only_b += y and not x
            n += 1
    return {"only_a": only_a, "only_b": only_b, "n": n, "p": sign_test(only_a, only_b)}


@dataclass
class Setting:
    """A run configuration and its result."""

    method: str
    params: dict
    result: dict


def sweep(trials, crops, labels, emb, *, victim, authorized, targets, thresholds, cs=(0.0, 0.25, 0.5, 0.75, 1.0),
          ds=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), include_ori: bool = True, log: Callable[[str], None] = print, **kw) -> list[Setting]:
    """Run ours for every c (Fig. 1), the (ori) constraint J(f_A(x), f_A(x+δ)) ≥ th_old
    (boundary walking against the original photo), and the baseline for every d."""
    th_a = thresholds[authorized.name]["th"]
    ev = dict(authorized=authorized, targets=targets, thresholds=thresholds)
    done = [Setting("clean", {}, evaluate(crops[[t.protected for t in trials]], trials, labels, emb, **ev))]
    for c in cs:
        x = protect(trials, crops, victim=victim, authorized=authorized, method="ours", c=c, th_old=th_a, **kw)
        done.append(Setting("ours", {"c": c}, evaluate(x, trials, labels, emb, **ev)))
        log(f"  ours c={c:g}: {_brief(done[-1].result)}")
    if include_ori:
        ori = [Trial(t.identity, t.protected, (t.protected,), t.validation) for t in trials]
        x = protect(ori, crops, victim=victim, authorized=authorized, method="ours", c=0.0, th_old=th_a, **kw)
        done.append(Setting("ori", {"c": 0.0}, evaluate(x, trials, labels, emb, **ev)))
        log(f"  (ori): {_brief(done[-1].result)}")
    for d in ds:
        x = protect(trials, crops, victim=victim, authorized=authorized, method="baseline", d=d, **kw)
        done.append(Setting("baseline", {"d": d}, evaluate(x, trials, labels, emb, **ev)))
        log(f"  baseline d={d:g}: {_brief(done[-1].result)}")
    return done


def _brief(r: dict) -> str:
    return f"TAR {r['tar']:.2f} FAR {r['far']:.4f} targets {r['target_mean']:.2f}"


def matched_comparison(settings: Sequence[Setting], tar_goal: float | None = None) -> dict:
    """Table 1's comparison at matched authorized TAR.

    Ours: the smallest c whose TAR reaches ``tar_goal`` (default: the clean
    photos' TAR, the paper's "near 98 %"), else the c with the highest TAR.
    Baseline: the smallest d whose TAR reaches ours' TAR, else the d with the
    highest TAR (``matched`` False then)."""
    clean = next(s for s in settings if s.method == "clean").result
    goal = clean["tar"] if tar_goal is None else tar_goal
    ours = [s for s in settings if s.method == "ours"]
    base = [s for s in settings if s.method == "baseline"]
    o = next((s for s in ours if s.result["tar"] >= goal - 1e-9), max(ours, key=lambda s: s.result["tar"]))
    b = next((s for s in base if s.result["tar"] >= o.result["tar"] - 1e-9), None)
    matched = b is not None
    if b is None:
        b = max(base, key=lambda s: (s.result["tar"], -s.result["target_mean"]))
    return {"goal": goal, "ours": o, "baseline": b, "matched": matched, "clean": clean}


def timeline_figure(hist, thresholds: Mapping[str, float] | None = None, at: int | None = None,
                    title: str = "boundary walking", fig=None):
    """Three panels of a run's history: bd over time; the authorized
    similarity J(f_A(x+δ), f̄_A) against th_new (and th_old); every model's
    similarity to the user's average feature, thresholds dashed."""
    import matplotlib.pyplot as plt

    it = hist.iterations
    sc = hist.state_curves
    fig = fig or plt.figure(figsize=(12, 2.9))
    fig.clear()
    ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.4, 1.6]})
    ax[0].step(it, sc["bd"], where="post", color="tab:red")
    ax[0].set_ylim(-0.1, 1.1)
    ax[0].set_yticks([0, 1])
    ax[0].set_title("bd (1 = pull back to the authorized side)", fontsize=9)
    ax[1].plot(it, sc["sim_authorized"], label="J(f_A(x+δ), f̄_A)", color="tab:blue")
    if "th_new" in sc:
        ax[1].plot(it, sc["th_new"], "--", label="th_new", color="tab:orange")
    if "th_old" in sc:
        ax[1].plot(it, sc["th_old"], ":", label="th_old", color="grey")
    ax[1].set_title("authorized similarity vs boundary", fontsize=9)
    ax[1].legend(fontsize=7)
    colours = {}
    for k, v in sc.items():
        if k.startswith("similarity/"):
            (line,) = ax[2].plot(it, v, label=k.split("/", 1)[1], lw=1.3)
            colours[k.split("/", 1)[1]] = line.get_color()
    for name, th in (thresholds or {}).items():
        if name in colours:
            ax[2].axhline(th, ls="--", lw=0.9, color=colours[name], alpha=0.8)
    ax[2].set_title("each model: similarity to the user's f̄ (dashed: threshold)", fontsize=9)
    ax[2].legend(fontsize=7, loc="best")
    for a in ax:
        a.set_xlabel("iteration", fontsize=8)
        a.tick_params(labelsize=7)
        if at is not None:
            a.axvline(at, color="k", lw=0.8, alpha=0.4)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["Trial", "make_trials", "model_thresholds", "resolvable_far", "protect", "Embeddings", "evaluate",
           "Setting", "sweep", "matched_comparison", "timeline_figure"]


def timeline_player(hist, source=None, thresholds: Mapping[str, float] | None = None, image_index: int = 0,
                    static: bool | None = None):
    """The player for boundary walking: a slider (and ▶) over the kept steps
    showing the image, its perturbation and :func:`timeline_figure` with the
    current iteration marked.  Falls back to a static figure without a
    widget-capable kernel (or with ``static=True``)."""

    from ..viz.figures import amplified, to_numpy_image
    from ..viz.player import scrubber, widgets_usable

    source = hist.steps[0].x if source is None else source

    def frame(k: int):
        step = hist.steps[k]
        fig = timeline_figure(hist, thresholds, at=step.i, title=f"iteration {step.i}")
        fig.set_size_inches(14, 2.9)
        axes = fig.axes
        for a in axes:
            pos = a.get_position()
            a.set_position([0.28 + 0.72 * pos.x0, pos.y0, 0.72 * pos.width, pos.height])
        for j, (img, ttl) in enumerate([(to_numpy_image(step.x[image_index]), f"x at step {step.i}"),
                                        (amplified(step.x[image_index] - source[image_index].to(step.x)), "δ (amplified)")]):
            a = fig.add_axes([0.01 + 0.13 * j, 0.12, 0.12, 0.72])
            a.imshow(img)
            a.set_axis_off()
            a.set_title(ttl, fontsize=8)
        return fig

    if static or (static is None and not widgets_usable()):
        return frame(len(hist.steps) - 1)
    return scrubber(len(hist.steps), frame, interval_ms=400, iterations=[s.i for s in hist.steps])


__all__ += ["timeline_player"]
