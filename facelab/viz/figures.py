"""Matplotlib figures of a run; no widgets needed (static fallback, reports)."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..steps import History


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """(3,H,W) or (1,3,H,W) float [0,1] tensor -> (H,W,3) array for imshow."""
    if x.ndim == 4:
        x = x[0]
    return x.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def amplified(delta: torch.Tensor) -> np.ndarray:
    """A perturbation made visible: 0.5 + δ scaled so its largest entry reaches 0 or 1."""
    d = delta.detach().float().cpu()
    if d.ndim == 4:
        d = d[0]
    scale = float(d.abs().max())
    d = 0.5 + 0.5 * d / scale if scale > 0 else torch.full_like(d, 0.5)
    return d.permute(1, 2, 0).numpy()


def show_images(images: Sequence[torch.Tensor] | torch.Tensor, titles: Sequence[str] | None = None, size: float = 2.4):
    """A row of images (each (3,H,W) or (1,3,H,W)); returns the figure."""
    images = list(images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for k, (ax, im) in enumerate(zip(axes[0], images)):
        ax.imshow(to_numpy_image(im))
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[k], fontsize=9)
    fig.tight_layout()
    return fig


def _curves_axis(ax, iterations, curves: Mapping[str, list[float]], title: str, at: int | None,
                 thresholds: Mapping[str, float] | None = None) -> None:
    colours = {}
    for name, values in curves.items():
        (line,) = ax.plot(iterations, values, label=name, lw=1.4)
        colours[name.split("/")[-1]] = line.get_color()
    for name, th in (thresholds or {}).items():
        ax.axhline(th, ls="--", lw=1, color=colours.get(name, "grey"), alpha=0.8)
    if at is not None:
        ax.axvline(at, color="k", lw=0.8, alpha=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("iteration", fontsize=8)
    ax.tick_params(labelsize=7)
    if curves:
        ax.legend(fontsize=7, loc="best")


def step_figure(hist: History, k: int, source: torch.Tensor | None = None, image_index: int = 0,
                thresholds: Mapping[str, float] | None = None, fig=None):
    """One frame of the player: image at kept step ``k``, its perturbation
    (amplified), every loss term over time and each model's similarity to
    the source with its threshold as a dashed line of the same colour."""
    step = hist.steps[k]
    source = hist.steps[0].x if source is None else source
    x = step.x[image_index]
    fig = fig or plt.figure(figsize=(11, 2.8))
    fig.clear()
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1.6, 1.6]})
    axes[0].imshow(to_numpy_image(x))
    axes[0].set_title(f"step {step.i}", fontsize=9)
    axes[1].imshow(amplified(x - source[image_index].to(x)))
    axes[1].set_title("perturbation (amplified)", fontsize=9)
    for ax in axes[:2]:
        ax.set_axis_off()
    sims = {n: v for n, v in hist.state_curves.items() if n.startswith("similarity/")}
    losses = {n: v for n, v in hist.curves.items() if not n.startswith("sim/")}
    _curves_axis(axes[2], hist.iterations, losses, "loss terms", step.i)
    _curves_axis(axes[3], hist.iterations, sims, "similarity to source (dashed: threshold)", step.i, thresholds)
    fig.tight_layout()
    return fig


def summary_grid(hist: History, n: int = 6, source: torch.Tensor | None = None, image_index: int = 0,
                 thresholds: Mapping[str, float] | None = None):
    """Static fallback of the player: ``n`` snapshots spread over the run, the
    amplified final perturbation, and the curves."""
    picks = np.unique(np.linspace(0, len(hist.steps) - 1, min(n, len(hist.steps))).round().astype(int))
    source = hist.steps[0].x if source is None else source
    fig = plt.figure(figsize=(2.0 * (len(picks) + 1), 4.8))
    grid = fig.add_gridspec(2, len(picks) + 1)
    for col, k in enumerate(picks):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(to_numpy_image(hist.steps[k].x[image_index]))
        ax.set_title(f"step {hist.steps[k].i}", fontsize=8)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, -1])
    ax.imshow(amplified(hist.last.x[image_index] - source[image_index].to(hist.last.x)))
    ax.set_title("final δ (amplified)", fontsize=8)
    ax.set_axis_off()
    half = (len(picks) + 1) // 2
    losses = {k: v for k, v in hist.curves.items() if not k.startswith("sim/")}
    sims = {k: v for k, v in hist.state_curves.items() if k.startswith("similarity/")}
    _curves_axis(fig.add_subplot(grid[1, :half]), hist.iterations, losses, "loss terms", None)
    _curves_axis(fig.add_subplot(grid[1, half:]), hist.iterations, sims, "similarity to source", None, thresholds)
    fig.tight_layout()
    return fig
