"""Targeted Anonymization's figures: the paper's Fig. 1 curves, a Table 1
view, and the two-dimensional walk of a run.

:func:`fig1_curves` and :func:`table1_figure` draw the results dict of
:func:`facelab.experiments.targeted_anonymization.run_protocol` (what
``python -m benchmarks targeted_anonymization`` writes as JSON);
:func:`walk_figure` draws histories of runs (:func:`facelab.history`);
:func:`timeline_figure` and :func:`timeline_player` step through one run (bd,
the authorized similarity against th_new and th_old, every model's similarity).
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

from .figures import amplified, to_numpy_image
from .player import scrubber, widgets_usable


def fig1_curves(results: Mapping, fig=None):
    """Fig. 1: (a) the authorized model's TAR and (b) its FAR against c, one
    colour per authorized model; (ori) — Formula 2's reference with th_old —
    dashed and the clean photos dotted in the same colour; nominal FAR grey."""
    secs = results["authorized"]
    fig = fig or plt.figure(figsize=(11, 3.6))
    fig.clear()
    ax_tar, ax_far = fig.subplots(1, 2)
    n = len(results["trials"])
    for k, (name, s) in enumerate(secs.items()):
        colour = f"C{k}"
        ours = sorted(s["ours"], key=lambda r: r["c"])
        cs = [r["c"] for r in ours]
        ax_tar.plot(cs, [100 * r["tar"] for r in ours], "o-", color=colour, label=name)
        ax_tar.axhline(100 * s["ori"]["tar"], color=colour, ls="--", lw=1)
        ax_tar.axhline(100 * s["clean"]["tar"], color=colour, ls=":", lw=1)
        far_n = ours[0]["far_n"]
        ax_far.plot(cs, [100 * r["far"] for r in ours], "o-", color=colour, label=f"{name} (n = {far_n})")
        ax_far.axhline(100 * s["ori"]["far"], color=colour, ls="--", lw=1)
    ax_far.axhline(100 * results["far"], color="grey", lw=1.5, alpha=0.6, label=f"nominal FAR {results['far']:g}")
    ax_tar.plot([], [], "k--", lw=1, label="(ori): Formula 2, th_old")
    ax_tar.plot([], [], "k:", lw=1, label="clean photo")
    ax_tar.set(xlabel="c (Eq. 4)", ylabel=f"authorized TAR, % of {n} trials", ylim=(-3, 103),
               title="(a) TAR of the authorized model")
    ax_far.set(xlabel="c (Eq. 4)", ylabel="authorized FAR, %", title="(b) FAR of the authorized model (dashed: (ori))")
    ax_tar.legend(fontsize=7, loc="lower right")
    ax_far.legend(fontsize=7, loc="upper right")
    victims = " + ".join(results["victims"])
    fig.suptitle(f"Targeted Anonymization, victim {victims}: Eq. 4 with th_new(c) vs (ori); "
                 f"chance ≈ FAR {results['far']:g}", fontsize=10)
    fig.tight_layout()
    return fig


def table1_figure(results: Mapping, fig=None):
    """Table 1 as a grid: rows authorized models, columns target models,
    each cell "ours / baseline" recognition at the highest TAR level both
    methods reach (from the results' ``claims.table1``); colour = baseline −
    ours (green: ours anonymises more).  '·' marks the authorized model."""
    secs = results["authorized"]
    rows = list(secs)
    cols = list(dict.fromkeys(t for s in secs.values() for t in s["targets"]))
    gap = np.full((len(rows), len(cols)), np.nan)
    fig = fig or plt.figure(figsize=(1.6 * len(cols) + 2.6, 0.55 * len(rows) + 1.4))
    fig.clear()
    ax = fig.subplots()
    labels = []
    for i, a in enumerate(rows):
        e = secs[a]["claims"]["table1"]
        labels.append(f"{a}\n" + (f"TAR ≥ {e['level']:.0%}: c={e['ours']['c']:g} / d={e['baseline']['d']:g}"
                                  if e else "never matched"))
        for j, t in enumerate(cols):
            if e is None or t not in e["targets"]["per_target"]:
                ax.text(j, i, "·" if t == a else "–", ha="center", va="center", fontsize=9)
                continue
            o, b = e["targets"]["per_target"][t]
            gap[i, j] = b - o
            ax.text(j, i, f"{100 * o:.0f}% / {100 * b:.0f}%", ha="center", va="center", fontsize=8)
    lim = max(0.05, float(np.nanmax(np.abs(gap)))) if np.isfinite(gap).any() else 1.0
    im = ax.imshow(gap, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("target model (recognition of the protected photo: ours / baseline)", fontsize=8)
    fig.colorbar(im, ax=ax, label="baseline − ours", shrink=0.8)
    ax.set_title(f"Table 1 view: {len(results['trials'])} trials per cell; chance ≈ FAR {results['far']:g}", fontsize=9)
    fig.tight_layout()
    return fig


def walk_figure(runs: Mapping[str, object], victim: str, authorized: str, th_old: float,
                thresholds: Mapping[str, float] | None = None, fig=None):
    """The walk in two dimensions: J_V (the victim's similarity to the
    user's f̄_V) across, J_A (the authorized model's, to f̄_A) up, one path per
    run in ``runs`` ({label: History}); steps with bd = 1 (pulled back to the
    authorized side) ringed in red; th_old grey, each run's th_new dashed in
    its colour; the victim's threshold (from ``thresholds``) vertical.

    Each history must carry ``"similarity/<victim>"`` and
    ``"similarity/<authorized>"`` state curves to the *average* features —
    true for :func:`targeted_anonymization` run with ``monitor_every=1`` (the
    victims' similarity at every step); for the baseline pass ``user_images=``
    and ``monitor=[victim, authorized]``.  State curves are batch means: run one
    photo (or read the batch mean)."""
    fig = fig or plt.figure(figsize=(6.4, 4.6))
    fig.clear()
    ax = fig.subplots()
    for k, (label, hist) in enumerate(runs.items()):
        sc = hist.state_curves
        kv, ka = f"similarity/{victim}", f"similarity/{authorized}"
        if kv not in sc or ka not in sc:
            raise KeyError(f"walk_figure: run {label!r} has no {kv!r} / {ka!r} state curves; run it with "
                           f"monitor=[victim, authorized] and user_images= (the baseline) or as boundary walking")
        x, y = np.asarray(sc[kv]), np.asarray(sc[ka])
        if np.isnan(x).any() or np.isnan(y).any():
            raise ValueError(f"walk_figure: run {label!r} reports {kv!r} / {ka!r} at some steps only; run it with "
                             "monitor_every=1 (the victims' similarity at every step)")
        colour = f"C{k}"
        ax.plot(x, y, "-", color=colour, lw=1.2, alpha=0.8, label=label)
        ax.scatter(x, y, s=14, color=colour, zorder=3)
        bd = np.asarray(sc.get("bd", np.zeros_like(x))) > 0.5
        ax.scatter(x[bd], y[bd], s=60, facecolors="none", edgecolors="red", lw=1, zorder=4)
        ax.annotate("x0", (x[0], y[0]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.scatter(x[-1:], y[-1:], marker="*", s=120, color=colour, zorder=5)
        if "th_new" in sc:
            ax.axhline(float(np.mean(sc["th_new"])), color=colour, ls="--", lw=1)
    ax.axhline(th_old, color="grey", ls=":", lw=1.5, label=f"th_old {th_old:+.3f}")
    if thresholds and victim in thresholds:
        ax.axvline(thresholds[victim], color="black", ls=":", lw=1, label=f"victim threshold {thresholds[victim]:+.3f}")
    ax.scatter([], [], s=60, facecolors="none", edgecolors="red", label="bd = 1 (pulled back)")
    ax.plot([], [], "k--", lw=1, label="th_new (Eq. 4)")
    ax.set(xlabel=f"J_V = J(f_V(x+δ), f̄_V), victim {victim}  (lower: more anonymised)",
           ylabel=f"J_A = J(f_A(x+δ), f̄_A), authorized {authorized}")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("boundary walking in (J_V, J_A): ★ = the last step", fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["fig1_curves", "table1_figure", "walk_figure", "timeline_figure", "timeline_player"]


# -- a run, stepped ----------------------------------------------------------------------


def timeline_figure(hist, thresholds: Mapping[str, float] | None = None, at: int | None = None,
                    title: str = "boundary walking", fig=None):
    """Three panels of a run's history: bd over time; the authorized
    similarity J(f_A(x+δ), f̄_A) against th_new (and th_old); every model's
    similarity to the user's average feature, thresholds dashed."""
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


def timeline_player(hist, source=None, thresholds: Mapping[str, float] | None = None, image_index: int = 0,
                    static: bool | None = None):
    """The player for boundary walking: a slider (and ▶) over the kept steps
    showing the image, its perturbation and :func:`timeline_figure` with the
    current iteration marked.  Falls back to a static figure without a
    widget-capable kernel (or with ``static=True``)."""

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
