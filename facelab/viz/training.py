"""Figures and players for trained methods (ErasableMask): the preview batch
per kept step, loss curves split by curriculum stage, adaptive weights, the
scenario picture and an attribute-condition slider.

A trained method's Step carries a preview batch in ``x`` made of named rows
(``state["rows"]``, e.g. clean / edited / protected / restored); these
figures read the rows by that name.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..steps import History, Step
from .figures import to_numpy_image
from .player import scrubber, shown_once, widgets_usable

STAGE_NAMES = {0: "all losses at once", 1: "stage 1: attribute editing", 2: "stage 2: protection + restorer",
               3: "stage 3: restorer alone"}


def rows_of(step: Step) -> dict[str, torch.Tensor]:
    rows = step.state.get("rows", ("images",))
    n = step.x.shape[0] // len(rows)
    return {name: step.x[k * n:(k + 1) * n] for k, name in enumerate(rows)}


def preview_figure(hist: History, k: int, fig=None):
    """The preview batch of kept step ``k``: one row per named row (clean,
    edited, protected, restored), one column per face, with the stage."""
    step = hist.steps[k]
    rows = rows_of(step)
    n = next(iter(rows.values())).shape[0]
    fig = fig or plt.figure(figsize=(1.5 * n + 0.8, 1.5 * len(rows) + 0.4))
    fig.clear()
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(to_numpy_image(imgs[c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    stage = int(step.state.get("stage", -1))
    fig.suptitle(f"iteration {step.i} — {STAGE_NAMES.get(stage, f'stage {stage}')}, "
                 f"epoch {step.state.get('epoch', '?')}", fontsize=9)
    fig.tight_layout()
    return fig


def training_player(hist: History, static: bool | None = None, interval_ms: int = 400):
    """Scrub or play the preview batch over the kept steps; without widgets
    (or ``static=True``) a figure of the first kept step and the last of each stage."""
    if static or (static is None and not widgets_usable()):
        stages = [int(s.state.get("stage", 0)) for s in hist.steps]
        picks = [0] + [max(k for k, s in enumerate(stages) if s == st) for st in dict.fromkeys(stages)]
        picks = sorted(set(picks))
        figs = [preview_figure(hist, k) for k in picks]
        return shown_once(figs[-1] if len(figs) == 1 else _stack(figs))
    return scrubber(len(hist.steps), lambda k: preview_figure(hist, k),
                    label=lambda k: f"iteration {hist.steps[k].i} of {hist.iterations[-1]}",
                    interval_ms=interval_ms)


def _stack(figs: Sequence) -> "plt.Figure":
    """Several figures side by side as one image (for the static fallback)."""
    arrays = []
    for f in figs:
        f.canvas.draw()
        arrays.append(np.asarray(f.canvas.buffer_rgba())[..., :3])
        plt.close(f)
    h = max(a.shape[0] for a in arrays)
    padded = [np.pad(a, ((0, h - a.shape[0]), (0, 8), (0, 0)), constant_values=255) for a in arrays]
    joined = np.concatenate(padded, axis=1)
    fig = plt.figure(figsize=(joined.shape[1] / 100, joined.shape[0] / 100))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(joined)
    ax.set_axis_off()
    return fig


def stage_curves(hist: History, skip: Sequence[str] = ("total",), log_scale: bool = False):
    """One panel per curriculum stage with every loss term that stage trains,
    over the iterations of that stage."""
    stages = hist.state_curves.get("stage", [])
    present = [s for s in dict.fromkeys(int(v) for v in stages[1:] if not math.isnan(v))]
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(4.2 * max(1, len(present)), 3.0), squeeze=False)
    for ax, st in zip(axes[0], present):
        idx = [k for k, v in enumerate(stages) if v == st and k > 0]
        its = [hist.iterations[k] for k in idx]
        for name, series in hist.curves.items():
            if name in skip or name.startswith("adv/"):
                continue
            ys = [series[k] for k in idx]
            if all(math.isnan(y) for y in ys):
                continue
            ax.plot(its, ys, lw=1.2, label=name)
        ax.set_title(STAGE_NAMES.get(st, f"stage {st}"), fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        if log_scale:
            ax.set_yscale("symlog", linthresh=1e-2)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def weight_curves(hist: History, prefix: str = "weights/", also: str = "adv/"):
    """The self-adaptive surrogate weights λ_k (left) and each surrogate's
    adversarial loss L_k (right) over the iterations."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    for name, series in hist.state_curves.items():
        if name.startswith(prefix):
            axes[0].plot(hist.iterations, series, label=name[len(prefix):])
    for name, series in hist.curves.items():
        if name.startswith(also):
            axes[1].plot(hist.iterations, series, lw=0.8, label=name[len(also):])
    axes[0].set_title("self-adaptive weight λ_k (Eq. 11)", fontsize=9)
    axes[1].set_title("surrogate loss L_k = 1 + cos (lower = more fooled)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def scenario_figure(clean: torch.Tensor, protected: torch.Tensor, restored: torch.Tensor,
                    verdicts: Mapping[str, tuple[bool, bool]], model_name: str = ""):
    """The ErasableMask scenario for one face: the owner publishes the
    protected face; an unauthorised recogniser does not match it; a trusted
    authority's restorer erases the mask and matches again.  ``verdicts``
    {model: (protected matches?, restored matches?)}."""
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.3))
    titles = ["clean (private)", "protected (published)", "restored by the trusted authority"]
    for ax, im, title in zip(axes, (clean, protected, restored), titles):
        ax.imshow(to_numpy_image(im))
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    lines_p = [f"{m}: {'match' if p else 'no match'}" for m, (p, _) in verdicts.items()]
    lines_r = [f"{m}: {'match' if r else 'no match'}" for m, (_, r) in verdicts.items()]
    axes[1].text(0.5, -0.08, "\n".join(lines_p), transform=axes[1].transAxes, ha="center", va="top", fontsize=8)
    axes[2].text(0.5, -0.08, "\n".join(lines_r), transform=axes[2].transAxes, ha="center", va="top", fontsize=8)
    fig.text(0.36, 0.55, "→ upload →", ha="center", fontsize=9)
    fig.text(0.66, 0.55, "→ erase →", ha="center", fontsize=9)
    fig.tight_layout()
    return fig


def attribute_slider(render: Callable[[dict[str, float]], "plt.Figure"], names: Sequence[str],
                     start: Mapping[str, float] | None = None, static: bool | None = None):
    """One slider per attribute (0 … 1) redrawing ``render(values)``; without
    widgets, ``render`` of the start values."""
    values = {n: float((start or {}).get(n, 0.0)) for n in names}
    if static or (static is None and not widgets_usable()):
        return shown_once(render(values))
    import ipywidgets as W
    from IPython.display import display

    sliders = {n: W.FloatSlider(value=values[n], min=0, max=1, step=0.25, description=n, continuous_update=False)
               for n in names}
    out = W.Output()

    def draw(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = render({n: s.value for n, s in sliders.items()})
            display(fig)
            plt.close(fig)

    for s in sliders.values():
        s.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox(list(sliders.values())), out])
