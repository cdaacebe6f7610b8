"""PMask's evaluation (§6) on a facelab identity set.

Protocol (:func:`make_split`): every identity with two or more photos is a
protected person ℓ in turn; a seeded split gives ℓ some *probe* photos
(𝒟_ℓ^P, never in the gallery) and some *gallery* photos (𝒟_ℓ^G, the photos
PMask masks); ℓ's remaining photos are left out, so the gallery holds only
the masked ones.  The intruder's gallery is every identity's gallery photos
plus every single-photo identity (distractors).  One person is protected at a
time (Eq. 2), the others' photos stay clean.

A probe is *protected* against a model when its nearest gallery image under
that model's similarity (Eq. 1) belongs to someone else; PSR (protection
success rate) is the fraction of probes protected.  PSR of the clean gallery
is the chance-level reference (how often the intruder already fails).

Focal diversity (:func:`pool_failures`): a model "fails" on a validation
photo when leave-one-out identification over the whole set (every other
photo as gallery) returns the wrong identity.  On the offline set that
validation data is the same faces as the evaluation (stated in every table).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import steps as _steps
from ..metrics import claims
from ..methods.fawkes import fawkes, select_target
from ..methods.pmask import pmask
from ..methods.tip_im import tip_im
from ..metrics.quality import psnr, ssim


@dataclass
class Split:
    """Per protected identity: gallery (masked) and probe photo indices; the intruder's gallery."""

    protected: dict[str, tuple[list[int], list[int]]]  # name -> (gallery, probes)
    gallery: list[int]
    labels: list[str]

    @property
    def probes(self) -> list[int]:
        return [p for _, ps in self.protected.values() for p in ps]

    @property
    def faces(self) -> list[int]:
        return [g for gs, _ in self.protected.values() for g in gs]

    def describe(self) -> str:
        return (f"{len(self.protected)} protected identities, {len(self.faces)} masked gallery photos, "
                f"{len(self.probes)} probes; intruder gallery of {len(self.gallery)} photos "
                f"({len({self.labels[i] for i in self.gallery})} identities)")


def make_split(labels: Sequence[str], max_gallery: int = 2, max_probes: int = 2, seed: int = 0,
               identities: Sequence[str] | None = None) -> Split:
    """Seeded gallery/probe split (see the module doc): per identity with n ≥ 2
    photos, ⌊n/2⌋ probes (at most ``max_probes``, at least 1) and up to
    ``max_gallery`` gallery photos from the rest."""
    labels = list(labels)
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(labels))
    members = {n: [i for i, l in enumerate(labels) if l == n] for n in names}
    multi = [n for n in names if len(members[n]) >= 2 and (identities is None or n in identities)]
    protected, gallery = {}, []
    for n in names:
        m = members[n]
        if n not in multi:
            if len(m) == 1:
                gallery.extend(m)
            continue
        order = [m[k] for k in rng.permutation(len(m))]
        n_probe = max(1, min(max_probes, len(m) // 2))
        probes, gal = order[:n_probe], order[n_probe : n_probe + max_gallery]
        protected[n] = (sorted(gal), sorted(probes))
        gallery.extend(gal)
    return Split(protected, sorted(gallery), labels)


def embed(model: nn.Module, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def pool_failures(models: Sequence[nn.Module], crops: torch.Tensor, labels: Sequence[str]) -> np.ndarray:
    """Boolean (n_models, n_samples): model fails to identify the photo by leave-one-out
    rank-1 over the whole set (samples: photos whose identity has another photo)."""
    labels = np.array(labels)
    counts = {l: int((labels == l).sum()) for l in set(labels)}
    samples = [i for i, l in enumerate(labels) if counts[l] >= 2]
    out = np.zeros((len(models), len(samples)), dtype=bool)
    for r, m in enumerate(models):
        e = embed(m, crops)
        s = m.similarity(e[samples][:, None], e[None])
        s[torch.arange(len(samples)), torch.as_tensor(samples)] = -float("inf")
        out[r] = labels[s.argmax(1).numpy()] != labels[samples]
    return out


def validation_failures(pool: Sequence[nn.Module], crops: torch.Tensor, labels: Sequence[str], far: float = 1e-3,
                        per_identity: int = 12) -> tuple[np.ndarray, int]:
    """Focal diversity's validation data, denser in failures than :func:`pool_failures`:
    genuine pairs of the set (up to ``per_identity`` per identity, so the video subjects
    do not dominate); a model fails on a pair when its similarity is below its
    calibrated threshold at FAR ``far``.  Returns (failures (n_models, n_pairs), n_pairs)."""
    import itertools

    lab = np.array(labels)
    pairs = []
    for n in dict.fromkeys(labels):
        idx = np.flatnonzero(lab == n)
        pairs += list(itertools.combinations(idx.tolist(), 2))[:per_identity]
    a = torch.tensor([p[0] for p in pairs])
    b = torch.tensor([p[1] for p in pairs])
    out = []
    for m in pool:
        e = embed(m, crops)
        out.append((m.similarity(e[a], e[b]) < m.threshold(far)).numpy())
    return np.array(out), len(pairs)


def psr(outcomes: dict[str, np.ndarray], models: Sequence[str] | None = None) -> float:
    """Mean protection success rate over ``models`` (default all) from :func:`identify`'s outcomes."""
    names = list(outcomes) if models is None else list(models)
    return float(np.mean([outcomes[n].mean() for n in names])) if names else float("nan")


@dataclass
class Run:
    """One method's protection of every masked photo, and its evaluation."""

    name: str
    protected: torch.Tensor  # (n_faces, 3, H, W) in split.faces order
    iterations: list[int]
    seconds: list[float]
    converged: list[bool] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU time per face (less load-sensitive)
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)  # model -> bool per probe (True = protected)
    ssim: np.ndarray | None = None
    psnr: np.ndarray | None = None


def identify(split: Split, crops: torch.Tensor, models: Sequence[nn.Module], masked: torch.Tensor | None,
             gallery_emb: dict | None = None) -> dict[str, np.ndarray]:
    """Per model, per probe (split.probes order): True when the probe is *not* identified as its
    own identity against the gallery with that identity's photos replaced by ``masked``
    (``masked`` None: the clean gallery)."""
    labels = np.array(split.labels)
    gal = list(split.gallery)
    gal_labels = labels[gal]
    pos = {g: k for k, g in enumerate(gal)}
    face_pos = {f: k for k, f in enumerate(split.faces)}
    out = {}
    for m in models:
        base = gallery_emb[m.name] if gallery_emb else embed(m, crops[gal])
        pe = embed(m, crops[split.probes])
        masked_e = embed(m, masked) if masked is not None else None
        res, k = [], 0
        for name, (gfaces, probes) in split.protected.items():
            g = base.clone()
            if masked_e is not None:
                for f in gfaces:
                    g[pos[f]] = masked_e[face_pos[f]]
            s = m.similarity(pe[k : k + len(probes)][:, None], g[None])
            res.extend(gal_labels[s.argmax(1).numpy()] != name)
            k += len(probes)
        out[m.name] = np.array(res, dtype=bool)
    return out


def protect(split: Split, crops: torch.Tensor, method: str, team: Sequence[nn.Module], *, log=None,
            gallery_emb: dict | None = None, **kw) -> Run:
    """Protect every masked photo one at a time (a face per run, as timed per face).

    ``method``: ``"pmask"`` (kw to :func:`facelab.methods.pmask.pmask`),
    ``"fawkes"`` (kw to :func:`facelab.methods.fawkes.fawkes`; the target
    identity chosen per person by :func:`select_target` among the other
    gallery identities) or ``"tip_im"`` (kw to :func:`facelab.methods.tip_im`;
    targets: one photo of each of ``n_targets`` other gallery identities).
    ``gallery_emb``: {model: embeddings of ``split.gallery``} to reuse (PMask's 𝒩 search)."""
    labels = split.labels
    outs, its, secs, conv, cpu = [], [], [], [], []
    n_targets = kw.pop("n_targets", 5)
    for name, (gfaces, _) in split.protected.items():
        others = [i for i in split.gallery if labels[i] != name]
        ref = crops[gfaces]
        other_ids = list(dict.fromkeys(labels[i] for i in others))
        if method == "fawkes":  # one target per person, from precomputed gallery embeddings when given
            cands = [crops[[i for i in others if labels[i] == o]] for o in other_ids]
            cand_emb = None
            if gallery_emb:
                cand_emb = [{k: v[[split.gallery.index(i) for i in others if labels[i] == o]] for k, v in gallery_emb.items()}
                            for o in other_ids]
            target = cands[select_target(ref, cands, team, seed=kw.get("seed", 0), embeddings=cand_emb)][:1]
        for f in gfaces:
            x = crops[f : f + 1]
            t0, c0 = time.perf_counter(), time.process_time()
            if method == "pmask":
                pos = [split.gallery.index(i) for i in others]
                pre = {k: v[pos] for k, v in gallery_emb.items()} if gallery_emb else None
                last = _steps.run(pmask(x, crops[others], team, reference=ref, others_embeddings=pre, **kw))
                conv.append(bool(last.state["converged"][0]))
                its.append(int(last.i))
            elif method == "fawkes":
                last = _steps.run(fawkes(x, target, team, **kw))
                its.append(int(last.i))
            elif method == "tip_im":
                tg = [next(i for i in others if labels[i] == o) for o in other_ids[:n_targets]]
                last = _steps.run(tip_im(x, crops[tg], list(team), **kw))
                its.append(int(last.i))
            else:
                raise ValueError(f"method must be pmask, fawkes or tip_im; got {method!r}")
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            outs.append(last.x)
            if log:
                log(f"  {method} {name} face {f}: {its[-1]} it, {secs[-1]:.1f}s")
    x = torch.cat(outs)
    x0 = crops[split.faces]
    return Run(method, x, its, secs, conv, cpu, ssim=ssim(x, x0).numpy(), psnr=psnr(x, x0).clamp(max=99).numpy())


def evaluate(run: Run, split: Split, crops: torch.Tensor, models: Sequence[nn.Module], gallery_emb=None) -> Run:
    run.outcomes = identify(split, crops, models, run.protected, gallery_emb)
    return run


# -- statistics ------------------------------------------------------------


def sign_test(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Exact two-sided sign (McNemar) test on paired booleans: (#a-only, #b-only, p)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    na, nb = int((a & ~b).sum()), int((b & ~a).sum())
    return na, nb, claims.sign_test(na, nb)


def paired_sign(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Exact two-sided sign test on paired numbers: (#a>b, #a<b, p); ties dropped."""
    d = np.asarray(a, float) - np.asarray(b, float)
    up, down = int((d > 0).sum()), int((d < 0).sum())
    return up, down, claims.sign_test(up, down)


def bootstrap_ci(values: np.ndarray, clusters: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% cluster-bootstrap CI of the mean of ``values`` (resampling whole clusters, e.g. identities)."""
    rng = np.random.default_rng(seed)
    values, clusters = np.asarray(values, float), np.asarray(clusters)
    ids = np.unique(clusters)
    groups = [values[clusters == c] for c in ids]
    means = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        means.append(np.concatenate([groups[k] for k in pick]).mean())
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def verdict(diff_sign: int, p: float, alpha: float = 0.05) -> str:
    """The project's wording (:func:`facelab.metrics.claims.verdict`) for a claim whose
    predicted direction is ``diff_sign > 0``, decided by the exact sign test's ``p``."""
    from ..metrics.claims import verdict as worded

    return worded(float(diff_sign), p=p, alpha=alpha)


# -- figures for the notebook ---------------------------------------------------


def threat_model_figure(x_gallery: torch.Tensor, x_probe: torch.Tensor, x_nearest: torch.Tensor,
                        x_masked: torch.Tensor | None, step=None, model: str | None = None, fig=None):
    """Gallery photo, probe, nearest other person and (if given) the masked photo,
    with the model's distance, the margin and what Eq. 4 asks (from a PMask ``step``)."""
    import matplotlib.pyplot as plt

    from ..viz.figures import to_numpy_image

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

    from ..viz.figures import amplified, to_numpy_image
    from ..viz.player import scrubber, shown_once, widgets_usable

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
    A slider shows the masked photo, its mask and the numbers; static figure of all δ without widgets."""
    import matplotlib.pyplot as plt

    from ..viz.figures import amplified, to_numpy_image
    from ..viz.player import shown_once, widgets_usable

    deltas = sorted(results)

    def frame(ds):
        fig, axes = plt.subplots(2, len(ds), figsize=(2.8 * len(ds), 5.6), squeeze=False)
        for j, d in enumerate(ds):
            r = results[d]
            axes[0, j].imshow(to_numpy_image(r["x"][0]))
            axes[0, j].set_title(f"δ = {d:g}\nSSIM {r['ssim']:.3f}, {r['iterations']} it", fontsize=8)
            axes[1, j].imshow(amplified(r["x"][0] - source[0].to(r["x"])))
            axes[1, j].set_title(f"PSR {r['psr']:.2f}, {r['seconds']:.1f} s", fontsize=8)
            for a in axes[:, j]:
                a.set_axis_off()
        fig.tight_layout()
        return fig

    if static or (static is None and not widgets_usable()):
        return shown_once(frame(deltas))
    import ipywidgets as W
    from IPython.display import display

    slider = W.SelectionSlider(options=deltas, value=deltas[0], description="δ", continuous_update=False)
    out = W.Output()

    def draw(change=None):
        with out:
            out.clear_output(wait=True)
            fig = frame([slider.value])
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()
    return W.VBox([slider, out])


LogFn = Callable[[str], None] | None
