"""PMask's pictures (Zhang et al.): the threat model, focal diversity of teams, a run's
timeline and a player over it, and a slider over the margin δ.  The runs come from
:func:`facelab.methods.pmask.pmask` and :mod:`facelab.experiments.pmask`."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

from .figures import amplified, to_numpy_image
from .player import scrubber, setting_slider, shown_once, widgets_usable

__all__ = ["threat_model_figure", "diversity_figure", "timeline_figure", "pmask_player", "delta_slider"]


def threat_model_figure(x_gallery: torch.Tensor, x_probe: torch.Tensor, x_nearest: torch.Tensor,
                        x_masked: torch.Tensor | None, step=None, model: str | None = None, fig=None):
    """Gallery photo, probe, nearest other person and (if given) the masked photo,
    with the model's distance, the margin and what Eq. 4 asks (from a PMask ``step``)."""
    imgs = [(x_gallery, "x^G: ℓ's gallery photo"), (x_probe, "x^P: ℓ's probe (unseen)"),
            (x_nearest, "𝒩(x^G): nearest other person")]
    if x_masked is not None:
        imgs.append((x_masked, "x^G + M: masked photo"))
    fig = fig or plt.figure(figsize=(3 * len(imgs), 3.4))
    axes = fig.subplots(1, len(imgs))
    for a, (im, title) in zip(axes, imgs):
        a.imshow(to_numpy_image(im[0] if im.ndim == 4 else im))
        a.set_title(title, fontsize=9)
        a.set_axis_off()
    if step is not None and model is not None:
        need = float(step.state["required"][model][0])
        m = float(step.state["margin"][model][0])
        d = float(step.state["distance"][model][0])
        fig.suptitle(f"{model}: DIST(x^G, 𝒩) = {need - m:.2f}, margin m = {m:.2f}; Eq. 4 asks the masked photo to be "
                     f"≥ {need:.2f} from every gallery photo of ℓ — it is {d:.2f}", fontsize=9)
    return fig


def diversity_figure(ranking: Sequence[tuple[tuple, float]], measured: dict, ax=None):
    """Focal diversity of every team (bars, ranked) next to the measured mean PSR of the teams that were run."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    names = ["+".join(t) for t, _ in ranking]
    ax.bar(range(len(ranking)), [d for _, d in ranking], color="tab:blue", alpha=0.6, label="focal diversity (Eq. 10)")
    ax.set_xticks(range(len(ranking)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("focal diversity")
    ax2 = ax.twinx()
    xs = [k for k, (t, _) in enumerate(ranking) if tuple(t) in measured]
    ax2.plot(xs, [measured[tuple(ranking[k][0])] for k in xs], "o", color="tab:red", label="measured PSR (black box)")
    ax2.set_ylabel("PSR", color="tab:red")
    ax2.set_ylim(0, 1)
    ax.set_title("teams ranked by focal diversity; red: measured black-box PSR", fontsize=9)
    return ax


def timeline_figure(hist, omega: float = 0.017, at: int | None = None, image_index: int = 0, fig=None):
    """PMask's run at a glance: both loss terms, κ, SSIM against 1 − 2ω, each
    model's distance against what Eq. 4 requires, and when the photo converged."""
    fig = fig or plt.figure(figsize=(12, 5.6))
    fig.clear()
    ax = fig.subplots(2, 2)
    its = [s.i for s in hist.steps]
    get = lambda key: [float(s.state[key][image_index]) for s in hist.steps]  # noqa: E731
    for key in ("rev_triplet", "impercept"):
        ax[0, 0].plot(its, [float(s.losses[key][image_index]) for s in hist.steps], label=key)
    ax[0, 0].set_title("loss terms: reverse triplet (Eq. 4), imperceptibility (Eq. 7)", fontsize=9)
    ax[0, 1].semilogy(its, get("kappa"), color="tab:purple")
    ax[0, 1].set_title("κ (Eq. 8, Fawkes' ×2 / ÷2 schedule)", fontsize=9)
    ax[1, 0].plot(its, get("ssim"), color="tab:green", label="SSIM")
    ax[1, 0].axhline(1 - 2 * omega, ls="--", color="tab:green", lw=0.8, label="1 − 2ω")
    ax[1, 0].set_title("SSIM against its bound", fontsize=9)
    team = hist.steps[-1].state["team"]
    for name in hist.steps[-1].state["distance"]:
        line, = ax[1, 1].plot(its, [float(s.state["distance"][name][image_index]) for s in hist.steps],
                              label=name + ("" if name in team else " (watched)"))
        ax[1, 1].axhline(float(hist.steps[-1].state["required"][name][image_index]), ls="--", lw=0.8,
                         color=line.get_color())
    ax[1, 1].set_title("distance to ℓ's gallery vs required (dashed)", fontsize=9)
    done = int(hist.steps[-1].state["converged_at"][image_index])
    for a in ax.flat:
        a.set_xlabel("iteration", fontsize=8)
        a.legend(fontsize=7) if a.get_legend_handles_labels()[0] else None
        if done >= 0:
            a.axvline(done, color="k", ls=":", lw=0.8)
        if at is not None:
            a.axvline(at, color="k", lw=0.6)
    if hasattr(fig, "tight_layout"):
        fig.tight_layout()
    return fig


def pmask_player(hist, source: torch.Tensor, omega: float = 0.017, image_index: int = 0, static: bool | None = None):
    """Scrub through a PMask run: the image, its mask, and :func:`timeline_figure`
    (dotted line: the step the photo converged).  Static figure without widgets."""
    def frame(k: int):
        step = hist.steps[k]
        fig = plt.figure(figsize=(12, 8), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.2])
        axes = top.subplots(1, 2)
        axes[0].imshow(to_numpy_image(step.x[image_index]))
        state = "converged" if bool(step.state["converged"][image_index]) else "running"
        axes[0].set_title(f"iteration {step.i} ({state}), SSIM {float(step.state['ssim'][image_index]):.3f}", fontsize=9)
        axes[1].imshow(amplified(step.x[image_index] - source[image_index].to(step.x)))
        axes[1].set_title("mask M (amplified)", fontsize=9)
        for a in axes:
            a.set_axis_off()
        timeline_figure(hist, omega, at=step.i, image_index=image_index, fig=bottom)
        return fig

    if static or (static is None and not widgets_usable()):
        return shown_once(frame(len(hist.steps) - 1))
    return scrubber(len(hist.steps), frame, label=lambda k: f"iteration {hist.steps[k].i}", interval_ms=300)


def delta_slider(results: dict, source: torch.Tensor, static: bool | None = None):
    """Precomputed runs over δ: ``results`` maps δ → {"x", "ssim", "iterations", "seconds", "psr"}.
    A slider (:func:`~facelab.viz.player.setting_slider`, every δ drawn once) shows the masked
    photo, its mask and the numbers; static figure of all δ without widgets."""

    def draw(axes, d):
        r = results[d]
        axes[0].imshow(to_numpy_image(r["x"][0]))
        axes[0].set_title(f"δ = {d:g}\nSSIM {r['ssim']:.3f}, {r['iterations']} it", fontsize=8)
        axes[1].imshow(amplified(r["x"][0] - source[0].to(r["x"])))
        axes[1].set_title(f"PSR {r['psr']:.2f}, {r['seconds']:.1f} s", fontsize=8)

    return setting_slider(sorted(results), "δ", draw, static=static)
