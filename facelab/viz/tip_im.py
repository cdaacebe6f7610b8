"""TIP-IM's two key figures (Yang et al. 2020), drawn from facelab's own runs.

* :func:`gamma_figure` — Fig. 4: Rank-N-T and SSIM of the protected probes
  against γ, one Rank-N-T line per model (white-box surrogate and black boxes),
  the black-box mean with a 95% bootstrap CI over probes, the chance level of
  Rank-N-T under a random ranking, and the number of probes.  Its input,
  :class:`GammaSweep`, is read from the rows of
  :func:`facelab.experiments.tip_im.run_protocol` or of the benchmark's
  ``benchmarks/results/tip_im.json`` (:func:`load_benchmark_rows`).
* :func:`gallery_figure` — Fig. 5 style: a probe's top-k gallery matches under
  one model before and after protection, frames coloured by whether a match
  has the probe's own identity (blue) or a target identity (green), the
  similarity on each match (yellow, as in the paper).

For stepping through one run: :func:`timeline_figure` (gains, J_iden and MMD,
similarities per model), :func:`tip_im_player` over a run's History, and
:func:`gamma_slider` over finished runs at several γ.

The paper's Fig. 4 has one panel per model with both curves; here the
protected images come from one surrogate, so SSIM is the same for every model
and gets its own panel, and all models share one Rank-N-T panel.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch

from .. import validate as V
from ..metrics.identification import similarity_matrix, top_n
from .figures import amplified, to_numpy_image
from .player import scrubber, setting_slider, shown_once, widgets_usable

if TYPE_CHECKING:
    from ..metrics.claims import PairedComparison

#: where ``python -m benchmarks tip_im`` writes its rows (present in a clone of the repository, not in a pip install)
BENCHMARK_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "tip_im.json"

OWN_COLOUR = "tab:blue"       # the paper's Fig. 5: blue boxes for the probe's own identity
TARGET_COLOUR = "tab:green"   # and green boxes for the target identities
OTHER_COLOUR = "0.8"
SCORE_COLOUR = "yellow"       # similarity scores marked in yellow


def load_benchmark_rows(path: str | Path | None = None) -> list[dict] | None:
    """The rows of ``benchmarks/results/tip_im.json`` (``python -m benchmarks tip_im``),
    or None when the file does not exist (e.g. facelab installed without the repository)."""
    path = Path(BENCHMARK_JSON if path is None else path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{path} has no 'rows' list; rerun `python -m benchmarks tip_im` to rewrite it")
    return rows


@dataclass(frozen=True)
class GammaSweep:
    """Per-probe outcomes of one method at several γ, every model.

    ``hits[model]``: (len(gammas), probes) booleans, Rank-N-T per probe;
    ``ssim``: (len(gammas), probes) SSIM of each protected probe to its original;
    ``chance``: Rank-N-T of a uniformly random gallery ranking, per γ.
    """

    method: str
    n: int
    gammas: tuple[float, ...]
    models: tuple[str, ...]
    white_box: tuple[str, ...]
    hits: Mapping[str, np.ndarray]
    ssim: np.ndarray
    chance: np.ndarray
    probe_ids: tuple[int, ...]

    @property
    def probes(self) -> int:
        return len(self.probe_ids)

    @property
    def black_box(self) -> tuple[str, ...]:
        return tuple(m for m in self.models if m not in self.white_box)

    def rate(self, model: str) -> np.ndarray:
        """Rank-N-T of ``model`` per γ (the fraction of probes)."""
        return self.hits[model].mean(axis=1)

    def black_box_rate(self) -> np.ndarray:
        """Rank-N-T per γ averaged over the black-box models (NaN without black boxes)."""
        if not self.black_box:
            return np.full(len(self.gammas), np.nan)
        return np.mean([self.rate(m) for m in self.black_box], axis=0)


def gamma_sweep(rows: Sequence[Mapping], method: str = "G", n: int = 1) -> GammaSweep | None:
    """The rows of one ``method`` at two or more γ, as a :class:`GammaSweep`;
    None when ``rows`` hold fewer than two γ for it (then run
    :func:`facelab.experiments.tip_im.run_protocol` with ``settings=[(method, γ) …]``).

    ``rows``: :func:`~facelab.experiments.tip_im.run_protocol`'s table or the
    benchmark JSON's ``rows`` (each with ``R{n}-T per probe``, ``SSIM per probe``,
    ``probe ids``, ``chance R{n}-T``, ``model``, ``box``, ``gamma``).
    """
    n = V.integer(n, "n", hint="the N of Rank-N-T, e.g. 1")
    key = f"R{n}-T per probe"
    sel = [r for r in rows if r.get("method") == method and r.get("gamma") is not None
           and not math.isnan(float(r["gamma"]))]
    gammas = tuple(sorted({float(r["gamma"]) for r in sel}))
    if len(gammas) < 2:
        return None
    missing = [k for k in (key, "SSIM per probe", "probe ids", f"chance R{n}-T", "model", "box") if k not in sel[0]]
    if missing:
        raise ValueError(f"the rows lack {missing}; they come from an older run: rerun `python -m benchmarks tip_im`")
    models = tuple(dict.fromkeys(r["model"] for r in sel))
    by = {(float(r["gamma"]), r["model"]): r for r in sel}
    absent = [(g, m) for g in gammas for m in models if (g, m) not in by]
    if absent:
        raise ValueError(f"no row for (gamma, model) {absent[:3]}: every model needs a row at every γ")
    probe_ids = tuple(by[gammas[0], models[0]]["probe ids"])
    if any(tuple(r["probe ids"]) != probe_ids for r in sel):
        raise ValueError("the rows protect different probes at different γ; a sweep needs the same probes throughout")
    hits = {m: np.array([by[g, m][key] for g in gammas], dtype=bool) for m in models}
    ssim = np.array([by[g, models[0]]["SSIM per probe"] for g in gammas], dtype=float)
    chance = np.array([np.mean([by[g, m][f"chance R{n}-T"] for m in models]) for g in gammas])
    white = tuple(m for m in models if by[gammas[0], m]["box"] == "white")
    return GammaSweep(method, n, gammas, models, white, hits, ssim, chance, probe_ids)


def gamma_steps(sweep: GammaSweep) -> list[tuple[float, float, "PairedComparison"]]:
    """Fig. 4's trend in numbers: for each consecutive pair of γ, ``(γ0, γ1, c)``
    with ``c`` the paired comparison "black-box Rank-N-T at γ1 beats γ0" over
    probe-model pairs (exact sign test, bootstrap CI over probes: the pairs of
    one probe are correlated), :func:`facelab.metrics.claims.compare_paired`.
    A "reversed" verdict means raising γ lowered Rank-N-T."""
    from ..metrics.claims import compare_paired

    if not sweep.black_box:
        raise ValueError("the sweep has no black-box model: Fig. 4's transfer trend needs one")
    clusters = [p for _ in sweep.black_box for p in sweep.probe_ids]
    out = []
    for j in range(len(sweep.gammas) - 1):
        a = [v for m in sweep.black_box for v in sweep.hits[m][j + 1]]
        b = [v for m in sweep.black_box for v in sweep.hits[m][j]]
        out.append((sweep.gammas[j], sweep.gammas[j + 1], compare_paired(a, b, clusters=clusters)))
    return out


def _bootstrap_mean_ci(values: np.ndarray, level: float, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile CI of the mean of ``values`` (models, probes) resampling probes (columns):
    a probe's outcomes under different models are correlated, so the probe is the unit."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, values.shape[1], size=(n_boot, values.shape[1]))
    means = values[:, pick].mean(axis=(0, 2))
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


def _gamma_axis(ax, gammas: Sequence[float]) -> None:
    positive = [g for g in gammas if g > 0]
    if positive and max(positive) / min(positive) >= 10:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xticks(list(gammas), [f"{g:g}" for g in gammas])
    ax.set_xlabel("γ (weight of MMD, facelab's scale)", fontsize=8)
    ax.tick_params(labelsize=7)


def gamma_figure(sweep: GammaSweep, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0, source: str = ""):
    """The paper's Fig. 4 on facelab's pool: Rank-N-T (left) and SSIM (right) against γ.

    Left: one line per model (the white-box surrogate solid, black boxes
    dashed), the black-box mean with its ``level`` bootstrap CI over probes
    (bold, error bars), and the chance level (grey dotted).  Right: mean SSIM
    over probes with its bootstrap CI.  ``source`` (e.g. the command that made
    the rows) goes into the title.  Returns the figure.
    """
    if not isinstance(sweep, GammaSweep):
        raise TypeError(f"sweep must be a GammaSweep (from gamma_sweep(rows)), got {type(sweep).__name__}")
    g = np.array(sweep.gammas)
    fig, (ax_r, ax_s) = plt.subplots(1, 2, figsize=(12, 4.0), gridspec_kw={"width_ratios": [1.5, 1]})
    for m in sweep.models:
        white = m in sweep.white_box
        ax_r.plot(g, sweep.rate(m), marker="o", ms=4, lw=2.0 if white else 1.1, ls="-" if white else "--",
                  alpha=1.0 if white else 0.75, label=f"{m} (white box)" if white else m)
    if sweep.black_box:
        stacked = np.stack([sweep.hits[m] for m in sweep.black_box])  # (models, γ, probes)
        mean = sweep.black_box_rate()
        cis = np.array([_bootstrap_mean_ci(stacked[:, j].astype(float), level, n_boot, seed) for j in range(len(g))])
        ax_r.errorbar(g, mean, yerr=[mean - cis[:, 0], cis[:, 1] - mean], color="k", lw=2.4, capsize=3,
                      label=f"black-box mean, {level:.0%} CI")
    ax_r.plot(g, sweep.chance, color="0.45", ls=":", lw=1.6, label="chance (random ranking)")
    ax_r.set_ylim(-0.03, 1.03)
    ax_r.set_ylabel(f"Rank-{sweep.n}-T", fontsize=8)
    ax_r.set_title(f"Rank-{sweep.n}-T against γ ({sweep.method}; {sweep.probes} probes per point)", fontsize=9)
    ax_r.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    mean_ssim = sweep.ssim.mean(axis=1)
    cis = np.array([_bootstrap_mean_ci(sweep.ssim[j][None], level, n_boot, seed) for j in range(len(g))])
    ax_s.errorbar(g, mean_ssim, yerr=[mean_ssim - cis[:, 0], cis[:, 1] - mean_ssim], color="tab:purple", marker="o",
                  ms=4, capsize=3, label=f"mean SSIM, {level:.0%} CI")
    ax_s.set_ylabel("SSIM (protected vs original)", fontsize=8)
    ax_s.set_title(f"SSIM against γ ({sweep.probes} probes per point)", fontsize=9)
    ax_s.legend(fontsize=7, loc="best")
    for ax in (ax_r, ax_s):
        _gamma_axis(ax, sweep.gammas)
    if source:
        fig.suptitle(source, fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Match:
    """One of a probe's top-k gallery matches."""

    rank: int          # 1 = most similar
    index: int         # column of the gallery
    label: str
    score: float
    kind: str          # "own", "target" or "other"


def _kind(label, own, targets) -> str:
    return "own" if label == own else "target" if label in targets else "other"


def first_rank(scores_row: np.ndarray, gallery_labels: Sequence, wanted) -> int | None:
    """Rank (1 = best) of the first gallery image whose label is in ``wanted``; None if there is none."""
    order = np.argsort(-np.asarray(scores_row, dtype=float), kind="stable")  # the same tie rule as top_n
    for r, j in enumerate(order, 1):
        if gallery_labels[j] in wanted:
            return r
    return None


def gallery_figure(model, probes: Mapping[str, torch.Tensor], gallery: torch.Tensor, gallery_labels: Sequence,
                   own: str, targets: Sequence[str], k: int = 3, *, image_index: int = 0,
                   gallery_embeddings: torch.Tensor | None = None, size: float = 1.7):
    """Fig. 5 style: for each probe image in ``probes`` (e.g. ``{"clean": x, "protected": x_adv}``,
    each (N,3,H,W); image ``image_index`` is shown), its ``k`` most similar
    ``gallery`` images under ``model`` (its own similarity), best first.

    Frames: blue = the probe's own identity ``own``, green = one of the
    ``targets``, light grey = anyone else; the similarity is printed on each
    match in yellow.  The probe column says at which rank the first own and
    first target image appear in the whole gallery.  Returns the figure; the
    matches drawn are in ``fig.matches`` ({probe name: [Match, …]}), those
    first ranks in ``fig.first_ranks`` ({probe name: {"own": r, "target": r}}).
    """
    if not isinstance(probes, Mapping) or not probes:
        raise TypeError("probes must be a non-empty mapping of row name -> image batch, e.g. "
                        "{'clean': x, 'protected': x_adv}")
    k = V.integer(k, "k", hint="how many of the best gallery matches to show, e.g. 3")
    gallery_labels = list(gallery_labels)
    if len(gallery_labels) != gallery.shape[0]:
        raise ValueError(f"{len(gallery_labels)} gallery_labels for {gallery.shape[0]} gallery images")
    targets = set(targets)
    if own in targets:
        raise ValueError(f"own identity {own!r} is also among the targets; a target is someone else")
    k = min(k, len(gallery_labels))
    rows = list(probes.items())
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(size * (k + 1) + 0.6, (size + 0.5) * len(rows) + 0.9), squeeze=False)
    fig.matches, fig.first_ranks = {}, {}
    colours = {"own": OWN_COLOUR, "target": TARGET_COLOUR, "other": OTHER_COLOUR}
    for i, (name, batch) in enumerate(rows):
        probe = V.images(batch, f"probes[{name!r}]")[image_index : image_index + 1]
        s = similarity_matrix(model, probe, gallery, gallery_embeddings=gallery_embeddings)[0].cpu().double().numpy()
        top = top_n(s[None], k)[0]
        matches = [Match(r + 1, int(j), gallery_labels[j], float(s[j]), _kind(gallery_labels[j], own, targets))
                   for r, j in enumerate(top)]
        fig.matches[name] = matches
        r_own, r_tgt = first_rank(s, gallery_labels, {own}), first_rank(s, gallery_labels, targets)
        fig.first_ranks[name] = {"own": r_own, "target": r_tgt}
        ax = axes[i, 0]
        ax.imshow(to_numpy_image(probe[0]))
        ax.set_title(f"{name} probe\n{own} first at rank {r_own or '—'}\na target first at rank {r_tgt or '—'}",
                     fontsize=7)
        for m, ax in zip(matches, axes[i, 1:]):
            ax.imshow(to_numpy_image(gallery[m.index]))
            ax.set_title(f"#{m.rank} {m.label}", fontsize=8)
            ax.text(0.04, 0.05, f"{m.score:.2f}", transform=ax.transAxes, fontsize=8,
                    bbox={"facecolor": SCORE_COLOUR, "edgecolor": "none", "pad": 1.5})
            for spine in ax.spines.values():
                spine.set_edgecolor(colours[m.kind])
                spine.set_linewidth(1.0 if m.kind == "other" else 4.0)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for spine in (sp for ax in axes[:, 0] for sp in ax.spines.values()):
        spine.set_visible(False)
    handles = [Patch(facecolor="none", edgecolor=OWN_COLOUR, lw=3, label=f"probe's own identity ({own})"),
               Patch(facecolor="none", edgecolor=TARGET_COLOUR, lw=3, label=f"target identity (k = {len(targets)})"),
               Patch(facecolor=SCORE_COLOUR, edgecolor="none", label=f"similarity ({getattr(model, 'name', 'model')})")]
    fig.suptitle(f"top-{k} gallery matches under {getattr(model, 'name', 'the model')}, before and after protection",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.09, 1, 1), h_pad=2.0)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    return fig


# -- a run, stepped: timeline, player, and a slider over γ --------------------------


def timeline_figure(hist, at: int | None = None, image_index: int = 0, target_names: Sequence[str] | None = None,
                    thresholds: dict | None = None, fig=None):
    """TIP-IM's run at a glance: each candidate's gain per step (the chosen target
    ringed), J_iden and MMD over time, similarity to the true identity and to
    the best target per model (``thresholds``: dashed lines).  ``at`` marks an iteration."""
    fig = fig or plt.figure(figsize=(12, 5.6))
    fig.clear()
    ax = fig.subplots(2, 2)
    kept = [s for s in hist.steps if s.state.get("gains") is not None]
    its = [s.i for s in hist.steps]
    if kept:
        gains = torch.stack([s.state["gains"][image_index] for s in kept]).T.numpy()
        k = gains.shape[0]
        im = ax[0, 0].imshow(gains, aspect="auto", cmap="viridis", origin="lower",
                             extent=(kept[0].i - 0.5, kept[-1].i + 0.5, -0.5, k - 0.5), interpolation="nearest")
        ax[0, 0].scatter([s.i for s in kept], [int(s.state["target"][image_index]) for s in kept], s=14,
                         facecolors="none", edgecolors="red", label="chosen")
        ax[0, 0].set_yticks(range(k), list(target_names) if target_names else range(k), fontsize=7)
        fig.colorbar(im, ax=ax[0, 0], label="gain")
    else:
        ax[0, 0].plot(its, [int(s.state["target"][image_index]) for s in hist.steps], "o-", ms=3)
    ax[0, 0].set_title("gain of each candidate target (red: chosen)", fontsize=9)
    for name in ("iden", "mmd"):
        if name in hist.curves:
            ax[0, 1].plot(hist.iterations, hist.curves[name], label=f"{name} (mean)")
    ax[0, 1].set_title("J_iden (nearest target) and MMD", fontsize=9)
    for key, a, title in (("similarity", ax[1, 0], "similarity to the true identity"),
                          ("target_similarity", ax[1, 1], "best similarity to a target")):
        for j, (n, v) in enumerate((n, v) for n, v in hist.state_curves.items() if n.startswith(key + "/")):
            name = n.split("/", 1)[1]
            line, = a.plot(hist.iterations, v, label=name)
            if thresholds and name in thresholds:
                a.axhline(thresholds[name], ls="--", lw=0.8, color=line.get_color())
        a.set_title(title + (" (dashed: threshold)" if thresholds else ""), fontsize=9)
    for a in (ax[0, 1], ax[1, 0], ax[1, 1]):
        a.set_xlabel("iteration", fontsize=8)
        a.legend(fontsize=7)
        if at is not None:
            a.axvline(at, color="k", lw=0.6)
    if at is not None:
        ax[0, 0].axvline(at, color="w", lw=0.6)
    if hasattr(fig, "tight_layout"):  # a SubFigure inside the player lays out with its parent
        fig.tight_layout()
    return fig


def tip_im_player(hist, source: torch.Tensor, target_images: torch.Tensor | None = None,
                  target_names: Sequence[str] | None = None, thresholds: dict | None = None, image_index: int = 0,
                  static: bool | None = None):
    """Scrub through a TIP-IM run: the image, its perturbation, the target chosen
    at that step, and :func:`timeline_figure`.  Static figure without widgets."""
    def frame(k: int):
        step = hist.steps[k]
        fig = plt.figure(figsize=(12, 8), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.2])
        axes = top.subplots(1, 3)
        axes[0].imshow(to_numpy_image(step.x[image_index]))
        axes[0].set_title(f"iteration {step.i}", fontsize=9)
        axes[1].imshow(amplified(step.x[image_index] - source[image_index].to(step.x)))
        axes[1].set_title("mask (amplified)", fontsize=9)
        t = int(step.state["target"][image_index])
        if target_images is not None:
            axes[2].imshow(to_numpy_image(target_images[t]))
        name = target_names[t] if target_names else t
        axes[2].set_title(f"target chosen: {name}", fontsize=9)
        for a in axes:
            a.set_axis_off()
        timeline_figure(hist, at=step.i, image_index=image_index, target_names=target_names,
                        thresholds=thresholds, fig=bottom)
        return fig

    if static or (static is None and not widgets_usable()):
        return shown_once(frame(len(hist.steps) - 1))
    return scrubber(len(hist.steps), frame, interval_ms=400, iterations=[s.i for s in hist.steps])


def gamma_slider(results: dict, source: torch.Tensor, image_index: int = 0, static: bool | None = None):
    """Effectiveness against naturalness (the paper's Fig. 3–4): ``results`` maps
    γ → ``{"x": protected images, "PSNR": …, "SSIM": …, "similarity": {model: …},
    "target_similarity": {model: …}}``; a slider over γ shows the image, its mask
    and the numbers (:func:`~facelab.viz.player.setting_slider`, every γ drawn once).  Static
    figure of every γ without widgets."""

    def draw(axes, g):
        r = results[g]
        x = r["x"][image_index]
        axes[0].imshow(to_numpy_image(x))
        axes[0].set_title(f"γ = {g:g}\nPSNR {r['PSNR']:.1f} dB  SSIM {r['SSIM']:.3f}", fontsize=8)
        axes[1].imshow(amplified(x - source[image_index].to(x)))
        lines = [f"{m}: own {float(r['similarity'][m]):+.2f} / target {float(r['target_similarity'][m]):+.2f}"
                 for m in r["similarity"]]
        axes[1].set_title("\n".join(lines), fontsize=6)

    return setting_slider(sorted(results), "γ", draw, static=static, column_width=2.6, height=5.4)
