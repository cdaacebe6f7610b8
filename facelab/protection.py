"""Protect a whole photo: every face, in the photo's own pixels, with a report a user can trust.

``facelab.protect(photo, method="mifgsm", eps=8/255)`` finds every face, and
for each one runs the chosen method on the full-resolution rectangle of the
photo around that face, seen by the attacked models through the differentiable
alignment warp (:class:`facelab.faces.view.RegionView`).  The perturbation is
then rounded to the photo's 8-bit grid, clipped to ±ε around the *original*
pixels (so overlapping faces never add up past ε) and kept only on the pixels
the alignment reads (the face's footprint).  Consequences, checked by the tests:

* pixels outside the faces' footprints are bit-identical to the input;
* every changed pixel differs by at most ε (⌊255·ε⌋ levels);
* nothing is resampled, so the face is not blurred.

The report scores each face on every model of the *pool* (the attacked models
and the others, which only show transfer): similarity to the original face
before and after, against each model's calibrated threshold at ``far``.
Protection is only measured against these models; a model outside the pool
may still recognise the face.  ``recheck`` repeats the scoring the way a
scraper would see the photo: the pixels are re-read, faces re-detected and
re-aligned; ``jpeg_quality`` does the same after JPEG compression, which
removes part of the perturbation.

Methods come from :data:`RECIPES`: one line per registered method
(:mod:`facelab.methods.registry`) says how to prepare its extra inputs for a region.  TIP-IM's ``targets`` default to
:func:`default_targets` (one photo each of five identities of the offline set);
Targeted Anonymization needs ``user_images`` (photos of you) and
``authorized`` (the model that should still recognise you); PMask's
``others`` default to :func:`default_others`.  PMask (a DSSIM budget) and PMT
have no L∞ budget of their own: protect's ±ε clip in the photo still applies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .faces.align import similarity_transform, warp_crop
from .faces.detect import detect_faces
from .faces.io import ImageReadError, NoFaceError
from .faces.view import RegionView, face_region, footprint
from .photo import Photo, encode, read_photo
from .steps import Step, run

DEFAULT_MODELS = ("facenet-casia",)
DEFAULT_FAR = 0.01
DEFAULT_TARGETS = 5


class ProtectError(ValueError):
    """A protection request that cannot run as given (the message says what to change)."""


# -- methods ------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How :func:`protect` runs one registered method (:mod:`facelab.methods.registry`) on a face region.

    The method itself, its iteration parameter (for the progress bar), its default and whether it
    has an L∞ budget come from the registry.  What protect adds: ``prepare(params, device)`` turns
    the user's inputs (photo paths, model names) into the tensors and models the method needs;
    ``wrapped`` names the inputs that are face models, which see the face through the region's
    alignment warp like the attacked ones; ``alpha_per_step``: a default step of
    ``alpha_per_step``·ε/steps for the fixed-step baselines (see :data:`BASELINE_ALPHA_PER_STEP`).
    """

    method: str
    prepare: Callable[[dict, Any], dict] = lambda params, device: params
    wrapped: tuple[str, ...] = ()
    alpha_per_step: float | None = None

    @property
    def info(self):
        from .methods import get

        return get(self.method)

    @property
    def steps_key(self) -> str | None:
        """The method's iteration-count parameter (None: a one-shot method)."""
        return self.info.iterations

    @property
    def default_steps(self) -> int | None:
        return None if self.steps_key is None else int(self.info.default(self.steps_key))

    @property
    def takes_eps(self) -> bool:
        """False: the method has no L∞ budget of its own; protect's ±ε clip in the photo still holds."""
        return self.info.budget == "eps"

    def call(self, x: torch.Tensor, views: list, wrap: Callable, params: dict) -> Iterator[Step]:
        """The method's Step generator on the region ``x`` (1, 3, h, w), attacking ``views``."""
        p = dict(params)
        for name in self.wrapped:
            p[name] = wrap(p[name])
        if self.alpha_per_step is not None:
            p.setdefault("alpha", self.alpha_per_step * p["eps"] / p.get(self.steps_key, self.default_steps))
        return self.info(x, views, **p)


#: I-FGSM and MI-FGSM in a photo: α = 2ε/steps unless given (their own default is ε/steps).  With the
#: alignment jitter the gradients disagree from step to step, and a step of ε/steps then never reaches
#: the ε-ball's corners (measured on the astronaut, mobileface, 10 steps: re-checked similarity 0.348 at
#: ε/steps, 0.185 at 2ε/steps, threshold 0.291).  Dodging's zero gradient at the clean photo is handled by
#: the baselines themselves (their first gradient is taken just beside it).
BASELINE_ALPHA_PER_STEP = 2.0


def default_targets(k: int = DEFAULT_TARGETS, size: int = 112) -> torch.Tensor:
    """TIP-IM's default target set Ĝ_I: the first photo of each of the first ``k``
    identities of the offline set (in manifest order), aligned at ``size``.

    A fixed, documented choice so two runs protect toward the same faces; pass
    ``targets=`` (aligned crops or photo paths) to choose your own.
    """
    from .faces import offline_set

    data = offline_set(size, log=lambda *a: None)
    firsts = [data.labels.index(name) for name in data.identities[:k]]
    return data.crops[firsts]


def _aligned(images, what: str, device) -> torch.Tensor:
    """Aligned crops from a tensor, or the largest face of each photo path."""
    if isinstance(images, torch.Tensor):
        return images.to(device)
    from .faces import load_image

    crops = []
    for p in images:
        try:
            crops.append(load_image(p, 112, max_faces=1).crops)
        except (NoFaceError, ImageReadError, FileNotFoundError) as exc:
            raise ProtectError(f"{what}: {exc}") from exc
    if not crops:
        raise ProtectError(f"{what}: no photos given")
    return torch.cat(crops).to(device)


def _prepare_tip_im(p: dict, device) -> dict:
    p = dict(p)
    targets = p.pop("targets", None)
    p["targets"] = default_targets().to(device) if targets is None else _aligned(targets, "targets", device)
    return p


def _prepare_ta(p: dict, device) -> dict:
    p = dict(p)
    if p.get("user_images") is None:
        raise ProtectError("targeted_anonymization needs user_images: photos of the same person "
                           "(the paper uses four), e.g. --user-photos me1.jpg me2.jpg me3.jpg")
    if p.get("authorized") is None:
        raise ProtectError("targeted_anonymization needs authorized: the model that should still "
                           "recognise you, e.g. --authorized mobileface")
    p["user_images"] = _aligned(p["user_images"], "user_images", device)
    if isinstance(p["authorized"], str):
        p["authorized"] = _load_model(p["authorized"], device)
    return p


def default_others(size: int = 112) -> torch.Tensor:
    """PMask's gallery of *other* people by default: the first photo of every identity of the offline set."""
    from .faces import offline_set

    data = offline_set(size, log=lambda *a: None)
    return data.crops[[data.labels.index(name) for name in data.identities]]


def _prepare_pmask(p: dict, device) -> dict:
    p = dict(p)
    others = p.pop("others", None)
    p["others"] = default_others().to(device) if others is None else _aligned(others, "others", device)
    return p


RECIPES: dict[str, Recipe] = {
    "fgsm": Recipe("fgsm"),
    "ifgsm": Recipe("ifgsm", alpha_per_step=BASELINE_ALPHA_PER_STEP),
    "pgd": Recipe("pgd"),
    "mifgsm": Recipe("mifgsm", alpha_per_step=BASELINE_ALPHA_PER_STEP),
    "tip_im": Recipe("tip_im", _prepare_tip_im),
    "targeted_anonymization": Recipe("targeted_anonymization", _prepare_ta, wrapped=("authorized",)),
    "pmask": Recipe("pmask", _prepare_pmask),
    "pmt": Recipe("pmt"),
}


# -- report -------------------------------------------------------------------


@dataclass
class ModelScore:
    """One model on one face: similarity (the model's own metric) to the original face."""

    model: str
    attacked: bool
    threshold: float
    before: float
    after: float
    recheck: float | None = None
    jpeg: float | None = None

    @property
    def matched_after(self) -> bool:
        return self.after >= self.threshold


@dataclass
class FaceReport:
    """One protected face: where it is, how much of the budget it used, and its scores."""

    index: int
    box: tuple[float, float, float, float]
    region: tuple[int, int, int, int]
    pixels_changed: int
    max_change: int  # in 8-bit levels
    scores: list[ModelScore]
    redetected: bool | None = None
    jpeg_redetected: bool | None = None


@dataclass
class ProtectReport:
    """What :func:`protect` did and how well it worked (:meth:`table` prints it)."""

    name: str
    method: str
    eps: float
    levels: int
    far: float
    models: list[str]
    pool: list[str]
    faces: list[FaceReport]
    faces_found: int
    seconds: float
    params: dict = field(default_factory=dict)
    recheck_source: str | None = None
    jpeg_quality: int | None = None

    def table(self) -> str:
        """The per-face, per-model report as plain text."""
        lines = [
            f"{self.name}: {len(self.faces)} of {self.faces_found} face(s) protected with {self.method}, "
            f"eps = {self.levels}/255, attacked: {', '.join(self.models)}; {self.seconds:.1f} s",
            f"similarity to the original face (each model's own metric); a face is matched when it is >= the "
            f"threshold at FAR {self.far:g}",
        ]
        rc = self.recheck_source is not None
        jq = self.jpeg_quality is not None
        for f in self.faces:
            lines.append(f"face {f.index + 1} (box {', '.join(f'{v:.0f}' for v in f.box)}): {f.pixels_changed} "
                         f"pixels changed, max change {f.max_change}/255")
            head = f"  {'model':<16}{'threshold':>10}{'before':>9}{'after':>9}"
            head += f"{'re-check':>10}" if rc else ""
            head += f"{f'JPEG q{self.jpeg_quality}':>10}" if jq else ""
            lines.append(head + "  still matched?")
            for s in f.scores:
                row = f"  {s.model + (' *' if s.attacked else ''):<16}{s.threshold:>10.3f}{s.before:>9.3f}{s.after:>9.3f}"
                final = s.after
                if rc:
                    row += f"{_fmt(s.recheck):>10}"
                    final = s.recheck
                if jq:
                    row += f"{_fmt(s.jpeg):>10}"
                verdicts = [_verdict(final, s.threshold)] + ([_verdict(s.jpeg, s.threshold) + " (JPEG)"] if jq else [])
                lines.append(row + "  " + ", ".join(verdicts))
        lines.append("* attacked model; the others only show transfer. Protection is measured against these models "
                     "only." + (f" JPEG column: the photo compressed at quality {self.jpeg_quality}, re-detected and "
                                "re-scored." if jq else ""))
        return "\n".join(lines)

    def jpeg_weakening(self) -> dict[str, float]:
        """Mean similarity gained back by JPEG compression, per model (re-check → JPEG)."""
        out: dict[str, list[float]] = {}
        for f in self.faces:
            for s in f.scores:
                base = s.recheck if s.recheck is not None else s.after
                if s.jpeg is not None and base is not None:
                    out.setdefault(s.model, []).append(s.jpeg - base)
        return {k: float(np.mean(v)) for k, v in out.items()}


def _fmt(v) -> str:
    return "lost" if v is None else f"{v:.3f}"


def _verdict(v, th) -> str:
    if v is None:
        return "no (face not re-detected)"
    return "YES" if v >= th else "no"


# -- the protected photo --------------------------------------------------------


@dataclass
class Protected:
    """:func:`protect`'s result: ``photo`` (the protected 8-bit pixels) and ``report``."""

    photo: Photo
    report: ProtectReport
    original: Photo
    references: list = field(repr=False, default_factory=list)
    pool_models: list = field(repr=False, default_factory=list)
    landmarks: np.ndarray | None = field(repr=False, default=None)

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3|4) uint8, ready for ``PIL.Image.fromarray``."""
        return self.photo.pixels()

    def encode(self, fmt: str = "PNG", quality: int = 95) -> bytes:
        return encode(self.image, fmt, quality)

    def save(self, path, quality: int = 95, recheck: bool = True, jpeg_quality: int | None = None):
        """Write PNG (lossless) or JPEG (by extension, ``quality``) without metadata;
        never overwrites.  ``recheck`` re-reads the written file, re-detects and
        re-scores its faces (the report's re-check column); ``jpeg_quality`` also
        scores the photo after JPEG at that quality, in the same batched pass."""
        from .photo import format_of, write_new

        fmt = format_of(path)
        out = write_new(path, self.encode(fmt, quality))
        self.check(out if recheck else None, jpeg_quality)
        return out

    def recheck(self, source) -> ProtectReport:
        """Re-read ``source`` (a saved file, bytes or pixels), re-detect, re-align and score again."""
        return self.check(source, None)

    def check_jpeg(self, quality: int = 95) -> ProtectReport:
        """Score the photo as it would be after JPEG compression at ``quality``."""
        return self.check(None, quality)

    def check(self, source=None, jpeg_quality: int | None = None) -> ProtectReport:
        """:meth:`recheck` of ``source`` and :meth:`check_jpeg` at ``jpeg_quality`` (either may be None),
        with one batched forward per model for both."""
        sources = ([source] if source is not None else []) + (
            [self.encode("JPEG", jpeg_quality)] if jpeg_quality is not None else [])
        found = iter(self._rescore(sources))
        if source is not None:
            for f, row in zip(self.report.faces, next(found)):
                f.redetected = row is not None
                for s in f.scores:
                    s.recheck = None if row is None else row[s.model]
            self.report.recheck_source = str(source) if not isinstance(source, (bytes, np.ndarray)) else "in memory"
        if jpeg_quality is not None:
            for f, row in zip(self.report.faces, next(found)):
                f.jpeg_redetected = row is not None
                for s in f.scores:
                    s.jpeg = None if row is None else row[s.model]
            self.report.jpeg_quality = int(jpeg_quality)
        return self.report

    def _rescore(self, sources) -> list[list[dict[str, float] | None]]:
        """Per source, per face: each pool model's similarity to the original face, or None when the
        face is not found again; each model scores the found faces of all sources in batches of
        :data:`RESCORE_BATCH`.  A source's full image is dropped once its faces are cropped at every
        size the pool needs, so a big photo is held once, not once per source."""
        from .faces.io import read_image

        sizes = sorted({m.input_size for m in self.pool_models})
        found = []  # (source index, face index, {crop size: aligned crop (3, S, S)})
        for k, source in enumerate(sources):
            image = read_image(source)
            dets = detect_faces(image)
            t = torch.from_numpy(image).permute(2, 0, 1)
            for n, lm in enumerate(self.landmarks):
                j = _match(lm, dets.landmarks)
                if j is not None:
                    lm_j = dets.landmarks[j]
                    found.append((k, n, {s: warp_crop(t, similarity_transform(lm_j, s, t.shape[1:])).clamp(0, 1)
                                         for s in sizes}))
            del image, t
        out: list[list[dict[str, float] | None]] = [[None] * len(self.report.faces) for _ in sources]
        for k, n, _ in found:
            out[k][n] = {}
        with torch.no_grad():
            for i, m in enumerate(self.pool_models):
                for start in range(0, len(found), RESCORE_BATCH):
                    part = found[start:start + RESCORE_BATCH]
                    refs = torch.cat([self.references[n][i] for _, n, _ in part])
                    crops = torch.stack([c[m.input_size] for _, _, c in part]).to(refs.device)
                    sims = m.similarity(m(crops), refs)
                    for (k, n, _), v in zip(part, sims.tolist()):
                        out[k][n][m.name] = float(v)
        return out


#: faces scored per model forward in the re-check: a batch's activations are all held at once (12 MP photo,
#: 6 faces, re-check + JPEG: 12 crops in one batch of faceres-deep peaked at 2.7 GB)
RESCORE_BATCH = 4


def _match(lm: np.ndarray, candidates: np.ndarray) -> int | None:
    """The re-detected face whose landmarks sit on ``lm`` (within half the eye distance)."""
    if len(candidates) == 0:
        return None
    d = np.linalg.norm(candidates.reshape(len(candidates), -1, 2) - lm[None], axis=2).mean(1)
    j = int(np.argmin(d))
    return j if d[j] <= 0.5 * np.linalg.norm(lm[1] - lm[0]) else None


# -- protect ------------------------------------------------------------------


def _load_model(name_or_model, device) -> nn.Module:
    from . import models

    if isinstance(name_or_model, nn.Module):
        return name_or_model.to(device)
    try:
        return models.load(name_or_model, device)
    except KeyError as exc:
        raise ProtectError(f"unknown model {name_or_model!r}; choose from {models.available(True)}") from exc


def _pool(attacked: list[nn.Module], pool, device) -> list[nn.Module]:
    from . import models
    from .cache import MissingCacheError

    names = models.available(include_optional=True) if pool is None else list(pool)
    out = list(attacked)
    have = {m.name for m in attacked}
    for n in names:
        if n in have:
            continue
        try:
            out.append(_load_model(n, device))
        except MissingCacheError:
            if pool is not None:
                raise
    return out


def levels_of(eps: float) -> int:
    """The budget in whole 8-bit levels: ⌊255·ε⌋ (ε on the [0,1] scale)."""
    k = int(np.floor(255.0 * float(eps) + 1e-6))
    if k < 1:
        raise ProtectError(f"eps={eps} is below one 8-bit level (1/255 = {1/255:.4f}); an 8-bit photo cannot "
                           "carry it: use e.g. eps=8/255")
    return k


def _select(dets, faces) -> list[int]:
    n = len(dets)
    if faces == "all":
        return list(range(n))
    if faces == "largest":
        return [0]
    idx = [faces] if isinstance(faces, int) else list(faces)
    bad = [i for i in idx if not 0 <= int(i) < n]
    if bad:
        raise ProtectError(f"faces={faces!r}: the photo has {n} face(s), numbered 0..{n - 1} largest first")
    return [int(i) for i in idx]


def protect(
    photo,
    method: str = "mifgsm",
    *,
    models: Sequence[str | nn.Module] = DEFAULT_MODELS,
    pool: Sequence[str] | None = None,
    eps: float = 8 / 255,
    faces: str | int | Sequence[int] = "all",
    far: float = DEFAULT_FAR,
    recheck: bool = True,
    jpeg_quality: int | None = 95,
    progress: bool = False,
    min_score: float = 0.9,
    jitter: float = 0.02,
    device=None,
    **params,
) -> Protected:
    """Protect every face of ``photo`` (a path, bytes, PIL image or uint8 array).

    ``method``: a name from :data:`RECIPES`, run with its own defaults plus
    ``params`` (e.g. ``steps=20``; TIP-IM ``targets=``, Targeted Anonymization
    ``user_images=`` and ``authorized=``).  ``models``: the attacked models;
    ``pool``: the models the report scores (default: every model in the cache).
    ``eps``: L∞ budget on the [0,1] scale, applied in the photo's pixels.
    ``faces``: ``"all"``, ``"largest"``, or indices (largest first).
    ``far``: the false-accept rate of the thresholds in the report.
    ``recheck``: re-detect the protected pixels and score again;
    ``jpeg_quality``: also score the photo after JPEG at this quality (None: skip).
    ``progress``: a tqdm bar per face.
    ``jitter``: the attacked models see the face through an alignment moved by
    a fresh random similarity at every gradient step (shift up to 2 % of the
    crop, scale ±2 %, rotation ±0.02 rad by default; 0 disables).  Re-detecting
    a protected face gives slightly different landmarks than the clean one, and
    a perturbation fitted to one exact alignment loses much of its effect on
    re-detection (measured: mobileface, MI-FGSM 10 steps at α = 2ε/10 on the
    astronaut: similarity 0.043 re-checked vs −0.337 in place without jitter;
    0.185 vs 0.202 with it).

    Returns :class:`Protected` (``.image``, ``.save(path)``, ``.report``).
    Raises :class:`ProtectError` for an unusable request,
    :class:`facelab.faces.NoFaceError` when no face is found,
    :class:`facelab.faces.ImageReadError` for an unreadable file.
    """
    t0 = time.perf_counter()
    if method not in RECIPES:
        raise ProtectError(f"unknown method {method!r}; choose from {', '.join(RECIPES)}")
    if faces not in ("all", "largest") and not isinstance(faces, (int, list, tuple)):
        raise ProtectError(f"faces must be 'all', 'largest' or face indices, got {faces!r}")
    recipe = RECIPES[method]
    k = levels_of(eps)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pic = read_photo(photo)
    image = pic.composite()
    dets = detect_faces(image, min_score=min_score, device=device)
    if len(dets) == 0:
        raise NoFaceError(f"no face was found in {pic.name}")
    chosen = _select(dets, faces)
    del image
    attacked = [_load_model(m, device) for m in (models if isinstance(models, (list, tuple)) else [models])]
    if not attacked:
        raise ProtectError("models: at least one model to attack is needed")
    pool_models = _pool(attacked, pool, device)
    params = recipe.prepare({"eps": float(eps), **params} if recipe.takes_eps else dict(params), device)
    sizes = sorted({int(m.input_size) for m in pool_models} | {112})

    out_rgb = pic.rgb.copy()
    reports, refs_all, lms = [], [], []
    for n, j in enumerate(chosen):
        lm = dets.landmarks[j].astype(np.float64)
        region = face_region(lm, pic.shape, sizes)
        ys, xs = region.slices
        orig = torch.from_numpy(pic.rgb[ys, xs]).permute(2, 0, 1)[None].to(device)
        current = torch.from_numpy(out_rgb[ys, xs]).permute(2, 0, 1)[None].to(device)  # earlier faces may overlap
        alpha = None
        if pic.alpha is not None:
            alpha = torch.from_numpy(pic.alpha[ys, xs])[None].to(device, torch.float32) / 255.0
        views = [RegionView(m, region, alpha, jitter=jitter, seed=i) for i, m in enumerate(attacked)]
        pool_views = [RegionView(m, region, alpha) for m in pool_models]
        mask = footprint(pool_views, region, device)

        def wrap(model, region=region, alpha=alpha):
            return RegionView(_load_model(model, device) if isinstance(model, str) else model, region, alpha,
                              jitter=jitter)

        total = None if recipe.steps_key is None else int(params.get(recipe.steps_key, recipe.default_steps)) + 1
        gen = recipe.call(current.float() / 255.0, views, wrap, params)
        last = run(gen, progress=progress, total=total, desc=f"face {n + 1}/{len(chosen)}")
        lo, hi = (orig.int() - k).clamp(0, 255), (orig.int() + k).clamp(0, 255)
        new = torch.round(last.x.detach() * 255.0).int().clamp(lo, hi)
        new = torch.where(mask, new, current.int()).to(torch.uint8)
        out_rgb[ys, xs] = new[0].permute(1, 2, 0).cpu().numpy()

        x0 = orig.float() / 255.0
        x1 = new.float() / 255.0
        scores, refs = [], []
        with torch.no_grad():
            for m, v in zip(pool_models, pool_views):
                e = v(torch.cat([x0, x1]))
                ref = e[:1]
                refs.append(ref)
                s = m.similarity(e, ref.expand_as(e))
                scores.append(ModelScore(m.name, any(m is a for a in attacked), float(m.threshold(far)),
                                         float(s[0]), float(s[1])))
        diff = (new.int() - orig.int()).abs()
        reports.append(FaceReport(int(j), tuple(float(v) for v in dets.boxes[j]),
                                  (region.x0, region.y0, region.x1, region.y1),
                                  int((diff.amax(1) > 0).sum()), int(diff.max()), scores))
        refs_all.append(refs)
        lms.append(lm)

    shown = {k_: v for k_, v in params.items() if isinstance(v, (int, float, str, bool))}
    report = ProtectReport(pic.name, method, float(eps), k, float(far), [m.name for m in attacked],
                           [m.name for m in pool_models], reports, len(dets), 0.0, shown)
    result = Protected(Photo(out_rgb, pic.alpha, pic.name), report, pic, refs_all, pool_models, np.stack(lms))
    if recheck or jpeg_quality is not None:
        result.check(result.image if recheck else None, jpeg_quality)
    report.seconds = time.perf_counter() - t0
    return result
