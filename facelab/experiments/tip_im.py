"""TIP-IM's evaluation protocol (Yang et al. 2020, §5.1) on a facelab identity set.

The paper: 500 protected identities, one probe photo each, their other
photos in the gallery; 10 target identities, one photo each in Ĝ_I (what
the method optimises towards), their other photos in the gallery; 500 more
identities as distractors; one white-box surrogate, every other model a
black box; Rank-N-T / Rank-N-UT (:mod:`facelab.metrics.identification`) and
PSNR / SSIM / MMD (:mod:`facelab.metrics.quality`).

:func:`make_protocol` follows that when the set has enough identities with
two or more photos (``"paper"`` mode, e.g. LFW).  facelab's offline set has
only 8 such identities (41 single-photo distractors), so it falls back to
``"leave-one-out"`` mode: each multi-photo identity is protected in turn and
every *other* multi-photo identity (up to ``n_targets``, i.e. 7 here) is a
target; one "held" photo per identity is its Ĝ_I photo when it is a target
(and its first probe when it is protected), held and probe photos never
enter the gallery.  Every table built here states the mode, the number of
probes and targets, and the data.

:func:`run_protocol` returns a :class:`Table` (a list of dict rows; pandas is
not a dependency).  ``python -m benchmarks tip_im`` saves its rows, per seed, with
the run's settings in ``benchmarks/results/tip_im.json`` (:data:`SCHEMA`;
:func:`load_results`, :func:`benchmark_results`); the claims on them are computed
in :mod:`facelab.experiments.tip_im_claims` and worded in
:mod:`facelab.experiments.tip_im_report`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .. import steps as _steps
from ..evaluation import Table, embed
from ..methods.tip_im import tip_im
from ..metrics.claims import chance_top_n
from ..metrics.identification import identification_rates, rank_n_targeted, similarity_matrix
from ..metrics.quality import mmd as mmd_metric
from ..metrics.quality import psnr, ssim
from . import results as _results


# -- the protocol -------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """One TIP-IM run: protected probe photos and the Ĝ_I photos (one per target identity)."""

    probes: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass
class Protocol:
    groups: list[Group]
    gallery: np.ndarray
    mode: str
    note: str = ""
    target_identities: list[str] = field(default_factory=list)

    @property
    def probes(self) -> list[int]:
        return [p for g in self.groups for p in g.probes]

    def describe(self, labels: Sequence[str]) -> str:
        k = sorted({len(g.targets) for g in self.groups})
        ids = {labels[p] for p in self.probes}
        return (f"{self.mode} protocol: {len(self.probes)} protected probes of {len(ids)} identities, "
                f"{'/'.join(map(str, k))} target identities per probe, gallery of {len(self.gallery)} images "
                f"({len({labels[i] for i in self.gallery})} identities). {self.note}").strip()


def make_protocol(labels: Sequence[str], n_targets: int = 10, probes_per_identity: int = 4,
                  max_protected: int | None = 500, batch_size: int = 16, seed: int = 0,
                  max_gallery_per_identity: int | None = None) -> Protocol:
    """Seeded split of a labelled set into TIP-IM runs and one gallery (see the module doc).

    ``probes_per_identity``: protected photos per identity (always leaving at
    least one photo of it in the gallery; the paper uses 1).
    ``max_protected``: at most this many protected identities (in either mode).
    ``max_gallery_per_identity``: cap on an identity's gallery photos (the
    offline set's two video subjects would otherwise fill the gallery with
    near-identical frames); None keeps all.
    """
    rng = np.random.default_rng(seed)
    labels = list(labels)
    arr = np.array(labels)
    multi = [name for name in dict.fromkeys(labels) if (arr == name).sum() >= 2]
    if len(multi) < 2:
        raise ValueError("the set needs at least two identities with two or more photos")
    members = {name: rng.permutation(np.flatnonzero(arr == name)) for name in multi}
    excluded: set[int] = set()
    groups: list[Group] = []
    if len(multi) >= n_targets + 2:
        mode = "paper"
        order = rng.permutation(len(multi))
        tgt_names = [multi[i] for i in order[:n_targets]]
        prot_names = [multi[i] for i in order[n_targets:]][: max_protected or None]
        tgt_photos = tuple(int(members[t][0]) for t in tgt_names)
        excluded.update(tgt_photos)
        probes: list[int] = []
        for name in prot_names:
            m = members[name]
            take = m[: min(probes_per_identity, len(m) - 1)]
            probes.extend(int(i) for i in take)
        excluded.update(probes)
        for s in range(0, len(probes), batch_size):
            groups.append(Group(tuple(probes[s : s + batch_size]), tgt_photos))
        note = ""
    else:
        mode = "leave-one-out"
        tgt_names = multi
        held = {name: int(members[name][0]) for name in multi}
        for name in multi[: max_protected or None]:
            m = members[name]
            take = tuple(int(i) for i in m[: min(probes_per_identity, len(m) - 1)])
            excluded.update(take)
            others = [o for o in multi if o != name]
            others = [others[i] for i in rng.permutation(len(others))[:n_targets]]
            groups.append(Group(take, tuple(held[o] for o in others)))
        excluded.update(held.values())
        note = (f"Only {len(multi)} identities have two or more photos, so each is protected in turn with the "
                f"others as targets (k = {min(n_targets, len(multi) - 1)} instead of the paper's 10).")
    gallery, per_identity = [], {}
    for i in range(len(labels)):
        if i in excluded:
            continue
        per_identity[labels[i]] = per_identity.get(labels[i], 0) + 1
        if max_gallery_per_identity is None or per_identity[labels[i]] <= max_gallery_per_identity:
            gallery.append(i)
    gallery = np.array(gallery, dtype=np.int64)
    return Protocol(groups, gallery, mode, note, list(tgt_names))


def _load(m, device=None) -> nn.Module:
    if isinstance(m, str):
        from ..models import load

        return load(m, device)
    return m if device is None else m.to(device)


def _settings(methods: Iterable[str], gammas: Iterable[float], settings) -> list[tuple[str, float, dict]]:
    """(gain, γ, extra keyword arguments) per setting; a setting may be (gain, γ) or
    (gain, γ, {"label": row name, **tip_im arguments that override the run's}).
    The single-target baseline aims at ``targets[0]``, where it is scored, unless a
    setting gives its own ``target_index`` (tip_im's default draws one per image)."""
    if settings is None:
        settings = [(m, g) for m in methods for g in gammas]
    out = []
    for item in settings:
        m, g, *extra = item
        if len(extra) > 1 or (extra and not isinstance(extra[0], dict)):
            raise ValueError(f"a setting is (gain, gamma) or (gain, gamma, dict of options); got {item!r}")
        options = dict(extra[0]) if extra else {}
        if str(m) == "single":
            options.setdefault("target_index", 0)
        out.append((str(m), float(g), options))
    return out


def protect(protocol: Protocol, crops: torch.Tensor, surrogate: nn.Module, method: str = "G", gamma: float = 0.0,
            **kw) -> torch.Tensor:
    """Protected versions of every probe of ``protocol`` (in ``protocol.probes`` order)."""
    out = []
    for g in protocol.groups:
        x, t = crops[list(g.probes)], crops[list(g.targets)]
        last = _steps.run(tip_im(x, t, surrogate, gain=method, gamma=gamma, **kw))
        out.append(last.x)
    return torch.cat(out)


def run_protocol(
    face_set=None,
    *,
    surrogate: str | nn.Module = "mobileface",
    black_boxes: Sequence[str | nn.Module] | None = None,
    methods: Sequence[str] = ("single", "G"),
    gammas: Sequence[float] = (0.0,),
    settings: Sequence[tuple] | None = None,
    n_targets: int = 10,
    probes_per_identity: int = 4,
    max_protected: int | None = 500,
    max_gallery_per_identity: int | None = None,
    batch_size: int = 16,
    ns: Sequence[int] = (1, 5),
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    device: torch.device | str | None = None,
    **tip_kw,
) -> Table:
    """Run TIP-IM (each method × γ, or the explicit ``settings``) on the
    protocol of :func:`make_protocol` and evaluate every model.  A setting is
    ``(gain, γ)`` or ``(gain, γ, {"label": row name, **tip_im options})``, the
    options overriding ``tip_kw`` for that setting (e.g. another ``variant``).

    ``face_set``: an :class:`facelab.faces.IdentitySet` (default: the offline
    set); ``surrogate``: the white-box model; ``black_boxes``: default every
    other pool model.  ``tip_kw`` go to :func:`facelab.methods.tip_im`
    (``steps``, ``eps``, ``alpha``, ``mu`` …).  ``device``: where the models and
    faces run (default: the faces' and models' own, the CPU).

    Returns one row per (method, γ, model): ``method``, ``gamma``, ``model``,
    ``box`` ("white"/"black"), ``R{n}-T`` / ``R{n}-UT`` (fractions),
    ``PSNR``, ``SSIM``, ``MMD`` (of the protected probes, the same for every
    model), ``probes``, ``targets``, ``seconds`` (protection time), ``data``
    and ``mode``.  Method ``"clean"`` rows evaluate the unprotected probes.
    Per-probe outcomes for paired tests: ``R{n}-T per probe`` (booleans),
    ``PSNR per probe``, ``SSIM per probe``, in ``probe ids`` order; the chance
    level of Rank-N-T under a random ranking: ``chance R{n}-T``.  The
    ``"single"`` baseline aims at one target (``targets[0]``) and is scored
    against that identity only; every other method against all k targets.
    """
    from ..models import available

    if face_set is None:
        from ..faces import offline_set

        face_set = offline_set()
    crops, labels = face_set.crops.to(device), list(face_set.labels)
    sur = _load(surrogate, device)
    if black_boxes is None:
        black_boxes = [n for n in available() if n != sur.name]
    boxes = [_load(b, device) for b in black_boxes]
    protocol = make_protocol(labels, n_targets, probes_per_identity, max_protected, batch_size, seed,
                             max_gallery_per_identity)
    if log:
        log(protocol.describe(labels))
    probes = protocol.probes
    true = [labels[p] for p in probes]
    tgt_sets = [{labels[t] for t in g.targets} for g in protocol.groups for _ in g.probes]
    # the single-target baseline aims at targets[0] only (target_index=0 unless a setting says
    # otherwise): it is scored against that one identity, not against all k
    own_sets = [{labels[g.targets[0]]} for g in protocol.groups for _ in g.probes]
    gal = crops[torch.as_tensor(protocol.gallery)]
    gal_labels = [labels[i] for i in protocol.gallery]
    models = [sur, *boxes]
    gal_emb = {m.name: embed(m, gal, batch=64) for m in models}
    x0 = crops[probes]

    rows = Table()

    # chance level of Rank-N-T: a random ranking of the gallery, per probe's own target images
    def chance(sets) -> dict[str, float]:
        counts = [sum(lab in t for lab in gal_labels) for t in sets]
        return {f"chance R{n}-T": float(np.mean([chance_top_n(len(gal_labels), k, n) for k in counts])) for n in ns}

    def evaluate(images: torch.Tensor, method: str, gamma: float, seconds: float, gain: str | None = None) -> None:
        targets_scored = own_sets if (gain or method) == "single" else tgt_sets
        per_psnr, per_ssim = psnr(images, x0).clamp(max=99), ssim(images, x0)
        quality = {"PSNR": float(per_psnr.mean()), "SSIM": float(per_ssim.mean()), "MMD": mmd_metric(images, x0),
                   "PSNR per probe": per_psnr.tolist(), "SSIM per probe": per_ssim.tolist()}
        for m in models:
            s = similarity_matrix(m, images, gal, gallery_embeddings=gal_emb[m.name])
            rates = identification_rates(s, gal_labels, true, targets_scored, ns)
            hits = {f"R{n}-T per probe": rank_n_targeted(s, gal_labels, targets_scored, n).tolist() for n in ns}
            rows.append({"method": method, "gamma": gamma, "model": m.name, "box": "white" if m is sur else "black",
                         **rates, **chance(targets_scored), **hits, **quality, "probes": len(probes), "probe ids": list(probes),
                         "gallery": len(gal_labels), "targets": len(protocol.groups[0].targets),
                         "seconds": seconds, "surrogate": sur.name, "data": face_set.name, "mode": protocol.mode})

    evaluate(x0, "clean", float("nan"), 0.0)
    for gain, gamma, extra in _settings(methods, gammas, settings):
        method = extra.pop("label", gain)
        t0 = time.perf_counter()
        adv = protect(protocol, crops, sur, gain, gamma, seed=seed, **{**tip_kw, **extra})
        float(adv.sum())  # the protection's queued GPU work is done before the clock stops (a no-op wait on the CPU)
        dt = time.perf_counter() - t0
        evaluate(adv, method, gamma, dt, gain)
        if log:
            bb = rows.where(method=method, gamma=gamma, box="black")
            log(f"{method:6s} γ={gamma:<4g} {dt:6.1f}s  black-box R1-T {np.mean(bb.column('R1-T')):.3f}  "
                f"PSNR {bb[0]['PSNR']:.2f}  SSIM {bb[0]['SSIM']:.3f}")
    return rows


def summarize(rows: Table, ns: Sequence[int] = (1, 5)) -> Table:
    """One row per (method, γ): white-box rates, the mean over black-box models, and quality."""
    out = Table()
    keys = list(dict.fromkeys((r["method"], r["gamma"]) for r in rows))
    for method, gamma in keys:
        sel = [r for r in rows if r["method"] == method and (r["gamma"] == gamma or (gamma != gamma and r["gamma"] != r["gamma"]))]
        white = [r for r in sel if r["box"] == "white"]
        black = [r for r in sel if r["box"] == "black"]
        row = {"method": method, "gamma": gamma}
        for n in ns:
            for kind in ("T", "UT"):
                key = f"R{n}-{kind}"
                row[f"white {key}"] = white[0][key] if white else float("nan")
                row[f"black {key}"] = float(np.mean([r[key] for r in black])) if black else float("nan")
        row.update({k: sel[0][k] for k in (*(f"chance R{n}-T" for n in ns), "PSNR", "SSIM", "MMD", "seconds")
                    if k in sel[0]})
        out.append(row)
    return out


#: the layout of ``benchmarks/results/tip_im.json``: ``schema``, ``fast``, ``command``, ``machine``,
#: ``data`` (``arg``, ``name``, ``credit``, ``photos``), ``params`` (``surrogate``, ``black_boxes``,
#: ``steps``, ``eps``, ``alpha``, ``mu``, ``diversity_prob``, ``probes_per_identity``,
#: ``max_gallery_per_identity``, ``gammas``, ``settings``), ``seeds``, ``minutes`` (per seed),
#: ``rows`` (the first seed's :func:`run_protocol` rows), ``rows of other seeds`` (by seed) and
#: ``claims over seeds`` (:func:`facelab.experiments.tip_im_claims.over_seeds`).  Files without a
#: ``schema`` (before 2) lack the machine, the minutes and the settings the pages show.
SCHEMA = 2


def load_results(path) -> dict | None:
    """The results dict at ``path`` if it exists and has this module's :data:`SCHEMA`, else None
    (an older file lacks what the page shows)."""
    return _results.load_results(path, SCHEMA)


def benchmark_results() -> dict | None:
    """The committed benchmark results (``benchmarks/results/tip_im.json`` beside the facelab package
    in a source checkout) if present and of the current :data:`SCHEMA`, else None — e.g. when facelab
    is pip-installed."""
    return _results.committed_results("tip_im", SCHEMA)
