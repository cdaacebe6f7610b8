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

Many photos: ``facelab.protect_many(photos, method, batch_size=8)`` yields one
result per photo, in order, attacking up to ``batch_size`` faces (possibly of
different photos) in one zero-padded canvas that the models see through
:class:`facelab.faces.view.BatchedRegionView` (one forward per step for the
batch).  It holds at most ``batch_size`` photos at a time; two faces of one
photo whose regions overlap never share a batch (the later one starts from the
earlier one's protected pixels, as here); a photo that cannot be protected
(unreadable, no face) yields a :class:`ProtectFailure` and the others go on.
Only the gradient baselines batch (:data:`BATCHED_METHODS`, see
:func:`batch_fallback`); the other methods' losses have terms over the whole
image, which would see the padding, so they run one face per batch.
:func:`protect` is ``protect_many`` on one photo, one face at a time: both run
the same per-face code (:class:`_Job`).
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .faces.detect import detect_faces
from .faces.io import ImageReadError, NoFaceError, describe
from .faces.view import BatchedRegionView, FaceRegion, RegionView, canvas_shape, face_region, footprint
from .photo import Photo, read_photo
# the result and its report (protection_report), re-exported where users import them from
from .protection_report import RESCORE_BATCH, FaceReport, ModelScore, ProtectReport, Protected
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

    This is :func:`protect_many` on one photo, one face at a time.

    Returns :class:`Protected` (``.image``, ``.save(path)``, ``.report``).
    Raises :class:`ProtectError` for an unusable request,
    :class:`facelab.faces.NoFaceError` when no face is found,
    :class:`facelab.faces.ImageReadError` for an unreadable file.
    """
    t0 = time.perf_counter()
    pic = read_photo(photo)  # an unreadable file is reported as such, before any model is loaded
    job = _Job.start(method, models=models, pool=pool, eps=eps, faces=faces, far=far, recheck=recheck,
                     jpeg_quality=jpeg_quality, min_score=min_score, jitter=jitter, device=device, params=params)
    result = next(job.stream([pic], batch_size=1, face_bar=False, step_bars=progress, errors="raise"))
    result.report.seconds = time.perf_counter() - t0
    return result


# -- many photos ----------------------------------------------------------------


#: methods whose faces protect_many batches: their update is per pixel (sign steps, ±ε clip, a per-pixel
#: random start) and their loss is a sum of per-face terms, so a face's gradient depends on its own pixels
#: only, alone or next to others on a zero-padded canvas (the momentum's L1 scale is per sample and the
#: padding gets no gradient, so the scale changes by a constant factor and sign(g) does not).
BATCHED_METHODS = ("fgsm", "ifgsm", "pgd", "mifgsm")


def batch_fallback(method: str, params: dict) -> str | None:
    """Why ``method`` with ``params`` runs one face per batch in :func:`protect_many`, or None when it batches.

    Not batched, because a term spans the whole image and would see the canvas padding or mix faces:
    PMask (SSIM of the whole image in its loss and its stopping rule), PMT (a start from the image's
    pixels in random order, one random warp of the whole image per step, gradient smoothing across
    it), TIP-IM (MMD between the batch's protected and real images) and Targeted Anonymization (input
    diversity: a random resize of the whole image).  Among the baselines, input diversity, TI
    smoothing (a convolution of the gradient across the canvas) and the L2 norm (a budget and a
    random start over the whole canvas, padding included) do the same, so those settings fall back.
    """
    if method not in BATCHED_METHODS:
        return f"{method}'s loss has terms over the whole image, which would see the canvas padding"
    if float(params.get("diversity_prob", 0.0) or 0.0) > 0:
        return "input diversity resizes the whole canvas"
    if params.get("ti_kernel") is not None:
        return "TI smoothing convolves the gradient across the canvas"
    if params.get("norm", "linf") != "linf":
        return "an L2 budget is measured over the whole canvas"
    return None


@dataclass
class ProtectFailure:
    """:func:`protect_many`'s entry for a photo it could not protect: ``source`` as given, ``name``
    (as a report would show it) and ``error`` (the exception :func:`protect` would raise).  ``ok`` is
    False (True on :class:`Protected`), so a loop can tell the two apart without isinstance."""

    source: Any = field(repr=False)
    name: str
    error: Exception

    ok: ClassVar[bool] = False

    def reraise(self):
        """Raise :attr:`error`."""
        raise self.error


#: per-photo errors protect_many reports instead of raising (a request error is raised before any photo)
PHOTO_ERRORS = (NoFaceError, ImageReadError, OSError, ValueError, TypeError)


def protect_many(
    photos: Iterable,
    method: str = "mifgsm",
    *,
    batch_size: int = 8,
    progress: bool = True,
    errors: str = "yield",
    models: Sequence[str | nn.Module] = DEFAULT_MODELS,
    pool: Sequence[str] | None = None,
    eps: float = 8 / 255,
    faces: str | int | Sequence[int] = "all",
    far: float = DEFAULT_FAR,
    recheck: bool = True,
    jpeg_quality: int | None = 95,
    min_score: float = 0.9,
    jitter: float = 0.02,
    device=None,
    **params,
) -> Iterator[Protected | ProtectFailure]:
    """Protect every face of many photos, ``batch_size`` faces per attack: one result per photo, in order.

    ``photos``: any iterable of what :func:`protect` takes (paths, bytes, PIL images, arrays); it is
    read lazily.  The other keyword arguments are :func:`protect`'s, checked (and the models loaded)
    before this returns: an unusable request raises :class:`ProtectError` here, not mid-folder.

    Faces are queued photo by photo and attacked ``batch_size`` at a time, possibly from different
    photos, in one canvas seen through :class:`facelab.faces.view.BatchedRegionView` (one model
    forward per step for the whole batch).  Two faces of one photo whose regions overlap never share a
    batch: the later one starts from the earlier one's protected pixels, as in :func:`protect`.
    Memory stays bounded: at most ``batch_size`` photos are held at once (the ones whose faces are
    queued or attacked, and finished ones waiting for their turn to be yielded); a photo is read only
    when there is room, and let go when yielded.

    Only :data:`BATCHED_METHODS` (the gradient baselines, L∞, without input diversity or TI) batch;
    every other method, and those settings (see :func:`batch_fallback`), runs one face per batch,
    exactly as :func:`protect` does, because their losses have terms over the whole image (SSIM,
    MMD, smoothness, a whole-canvas resize or norm) that would see the canvas padding or mix faces.
    Batched results are not bit-identical to one-at-a-time ones (a batched convolution sums in
    another order, and the baselines' seeded start noise is drawn for the whole canvas), but they
    are the same attack; with ``batch_size=1`` they are bit-identical to :func:`protect`.

    Each :class:`Protected` has the report :func:`protect` gives (the re-check and JPEG check run
    per photo, when it is yielded); its ``seconds`` is the photo's share: detection, its faces'
    share of each batch (batch time / faces in the batch) and its checks.
    ``progress``: one tqdm bar over faces (its total grows as photos are read).
    ``errors``: ``"yield"`` (default) yields a :class:`ProtectFailure` in the photo's place for an
    unreadable file, a photo with no face or a bad ``faces`` index, and goes on with the others;
    ``"raise"`` raises that error when the photo's turn comes.
    """
    if isinstance(photos, (str, bytes, bytearray, os.PathLike, np.ndarray)) or hasattr(photos, "getpixel"):
        raise ProtectError("protect_many takes a list (or any iterable) of photos; for one photo use protect")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProtectError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if errors not in ("yield", "raise"):
        raise ProtectError(f"errors must be 'yield' or 'raise', got {errors!r}")
    job = _Job.start(method, models=models, pool=pool, eps=eps, faces=faces, far=far, recheck=recheck,
                     jpeg_quality=jpeg_quality, min_score=min_score, jitter=jitter, device=device, params=params)
    return job.stream(photos, batch_size=batch_size, face_bar=progress, step_bars=False, errors=errors)


# -- the shared per-face code ---------------------------------------------------------------------


def _overlap(a: FaceRegion, b: FaceRegion) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


class _PhotoJob:
    """One photo in flight: its faces' regions, which earlier faces each must wait for (overlapping
    regions), the pixels protected so far and the per-face reports."""

    def __init__(self, pic: Photo, dets, chosen: list[int], sizes):
        self.pic, self.dets, self.chosen = pic, dets, chosen
        self.landmarks = [dets.landmarks[j].astype(np.float64) for j in chosen]
        self.regions = [face_region(lm, pic.shape, sizes) for lm in self.landmarks]
        self.waits = [{m for m in range(n) if _overlap(self.regions[m], self.regions[n])}
                      for n in range(len(chosen))]
        self.out_rgb = pic.rgb.copy()
        self.reports: list[FaceReport | None] = [None] * len(chosen)
        self.refs: list = [None] * len(chosen)
        self.started: set[int] = set()
        self.done: set[int] = set()
        self.seconds = 0.0

    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.chosen)

    def ready(self) -> list[int]:
        """Faces not started whose overlapping earlier faces are all protected, in order."""
        return [n for n in range(len(self.chosen)) if n not in self.started and self.waits[n] <= self.done]


@dataclass
class _Job:
    """A checked protection request with its models loaded: what every photo of a run shares."""

    method: str
    recipe: Recipe
    eps: float
    levels: int
    far: float
    faces: Any
    min_score: float
    jitter: float
    device: torch.device
    attacked: list
    pool_models: list
    params: dict
    sizes: list
    recheck: bool
    jpeg_quality: int | None

    @classmethod
    def start(cls, method, *, models, pool, eps, faces, far, recheck, jpeg_quality, min_score, jitter, device,
              params) -> "_Job":
        if method not in RECIPES:
            raise ProtectError(f"unknown method {method!r}; choose from {', '.join(RECIPES)}")
        if faces not in ("all", "largest") and not isinstance(faces, (int, list, tuple)):
            raise ProtectError(f"faces must be 'all', 'largest' or face indices, got {faces!r}")
        if isinstance(faces, (list, tuple)) and not faces:
            raise ProtectError("faces=[]: give at least one face index, 'largest' or 'all'")
        recipe = RECIPES[method]
        k = levels_of(eps)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        attacked = [_load_model(m, device) for m in (models if isinstance(models, (list, tuple)) else [models])]
        if not attacked:
            raise ProtectError("models: at least one model to attack is needed")
        pool_models = _pool(attacked, pool, device)
        prepared = recipe.prepare({"eps": float(eps), **params} if recipe.takes_eps else dict(params), device)
        sizes = sorted({int(m.input_size) for m in pool_models} | {112})
        return cls(method, recipe, float(eps), k, float(far), faces, min_score, jitter, device, attacked,
                   pool_models, prepared, sizes, bool(recheck), jpeg_quality)

    # -- photos in, results out --

    def open(self, photo) -> _PhotoJob:
        """Read ``photo``, detect its faces and choose the ones to protect (raises on a bad photo)."""
        pic = read_photo(photo)
        image = pic.composite()
        dets = detect_faces(image, min_score=self.min_score, device=self.device)
        if len(dets) == 0:
            raise NoFaceError(f"no face was found in {pic.name}")
        chosen = _select(dets, self.faces)
        del image
        return _PhotoJob(pic, dets, chosen, self.sizes)

    def stream(self, photos: Iterable, *, batch_size: int, face_bar: bool, step_bars: bool,
               errors: str) -> Iterator[Protected | ProtectFailure]:
        """The results of ``photos`` in order (see :func:`protect_many`); a generator."""
        from tqdm.auto import tqdm

        if batch_fallback(self.method, self.params) is not None:
            batch_size = 1
        source = iter(photos)
        more = True
        held: deque = deque()  # _PhotoJob or ProtectFailure, in input order
        bar = None  # made when the first photo's faces are known (a notebook bar made with no total stays "unknown")
        try:
            while True:
                while more and len(held) < batch_size and _n_ready(held) < batch_size:
                    try:
                        photo = next(source)
                    except StopIteration:
                        more = False
                        break
                    t = time.perf_counter()
                    try:
                        entry = self.open(photo)
                    except PHOTO_ERRORS as exc:
                        entry = ProtectFailure(photo, describe(photo), exc)
                    else:
                        entry.seconds += time.perf_counter() - t
                        if bar is None:
                            bar = tqdm(total=len(entry.chosen), unit="face", desc="protecting", disable=not face_bar)
                        else:
                            _grow(bar, len(entry.chosen))
                    held.append(entry)
                while held and (isinstance(held[0], ProtectFailure) or held[0].finished):
                    entry = held.popleft()
                    if isinstance(entry, ProtectFailure):
                        if errors == "raise":
                            raise entry.error
                        yield entry
                    else:
                        yield self.finish(entry)
                if not held:
                    if not more:
                        return
                    continue
                batch = []
                for entry in held:
                    if isinstance(entry, _PhotoJob):
                        batch += [(entry, n) for n in entry.ready()[:batch_size - len(batch)]]
                if not batch:
                    raise RuntimeError("protect_many: no face is ready although photos are unfinished")
                self.attack(batch, step_bars)
                bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()

    def attack(self, batch: list[tuple[_PhotoJob, int]], step_bars: bool = False) -> None:
        """Run the method on these faces in one canvas, write their protected pixels and reports.

        One face: the canvas is its region itself, and every operation is the one-face path's."""
        t0 = time.perf_counter()
        device, recipe, params, jitter = self.device, self.recipe, self.params, self.jitter
        for ph, n in batch:
            ph.started.add(n)
        regions = [ph.regions[n] for ph, n in batch]
        origs, currents, alphas = [], [], []
        for (ph, n), region in zip(batch, regions):
            ys, xs = region.slices
            # a caller's array may be read-only (torch.from_numpy would share it): the crop is a copy
            origs.append(torch.from_numpy(ph.pic.rgb[ys, xs].copy()).permute(2, 0, 1)[None].to(device))
            # earlier faces of the photo may overlap: start from their protected pixels
            currents.append(torch.from_numpy(ph.out_rgb[ys, xs]).permute(2, 0, 1)[None].to(device))
            alphas.append(None if ph.pic.alpha is None else
                          torch.from_numpy(ph.pic.alpha[ys, xs].copy())[None].to(device, torch.float32) / 255.0)
        if len(batch) == 1:
            shape, canvas = regions[0].shape, currents[0]
        else:
            shape = canvas_shape(regions, self.sizes)
            canvas = torch.zeros((len(batch), 3, *shape), dtype=torch.uint8, device=device)
            for i, (c, r) in enumerate(zip(currents, regions)):
                canvas[i, :, :r.shape[0], :r.shape[1]] = c[0]
        views = [BatchedRegionView(m, regions, alphas, jitter=jitter, seeds=i, shape=shape)
                 for i, m in enumerate(self.attacked)]

        def wrap(model):
            return BatchedRegionView(_load_model(model, device) if isinstance(model, str) else model, regions,
                                     alphas, jitter=jitter, shape=shape)

        total = None if recipe.steps_key is None else int(params.get(recipe.steps_key, recipe.default_steps)) + 1
        ph, n = batch[0]
        gen = recipe.call(canvas.float() / 255.0, views, wrap, params)
        last = run(gen, progress=step_bars and len(batch) == 1, total=total, desc=f"face {n + 1}/{len(ph.chosen)}")
        x = last.x.detach()
        del gen, last, canvas
        share = (time.perf_counter() - t0) / len(batch)
        for i, ((ph, n), region, orig, current, alpha) in enumerate(zip(batch, regions, origs, currents, alphas)):
            t = time.perf_counter()
            h, w = region.shape
            self._write(ph, n, region, orig, current, alpha, x[i:i + 1, :, :h, :w])
            ph.seconds += share + time.perf_counter() - t

    def _write(self, ph: _PhotoJob, n: int, region: FaceRegion, orig, current, alpha, x) -> None:
        """Round face n's result to 8 bits, clip to ±ε around the original, keep its footprint, score it."""
        k = self.levels
        pool_views = [RegionView(m, region, alpha) for m in self.pool_models]
        mask = footprint(pool_views, region, self.device)
        lo, hi = (orig.int() - k).clamp(0, 255), (orig.int() + k).clamp(0, 255)
        new = torch.round(x * 255.0).int().clamp(lo, hi)
        new = torch.where(mask, new, current.int()).to(torch.uint8)
        ys, xs = region.slices
        ph.out_rgb[ys, xs] = new[0].permute(1, 2, 0).cpu().numpy()

        x0 = orig.float() / 255.0
        x1 = new.float() / 255.0
        scores, refs = [], []
        with torch.no_grad():
            for m, v in zip(self.pool_models, pool_views):
                e = v(torch.cat([x0, x1]))
                ref = e[:1]
                refs.append(ref)
                s = m.similarity(e, ref.expand_as(e))
                scores.append(ModelScore(m.name, any(m is a for a in self.attacked), float(m.threshold(self.far)),
                                         float(s[0]), float(s[1])))
        diff = (new.int() - orig.int()).abs()
        j = ph.chosen[n]
        ph.reports[n] = FaceReport(int(j), tuple(float(v) for v in ph.dets.boxes[j]),
                                   (region.x0, region.y0, region.x1, region.y1),
                                   int((diff.amax(1) > 0).sum()), int(diff.max()), scores)
        ph.refs[n] = refs
        ph.done.add(n)

    def finish(self, ph: _PhotoJob) -> Protected:
        """The photo's :class:`Protected`, re-checked / JPEG-checked as asked."""
        t = time.perf_counter()
        pic = ph.pic
        shown = {k_: v for k_, v in self.params.items() if isinstance(v, (int, float, str, bool))}
        report = ProtectReport(pic.name, self.method, self.eps, self.levels, self.far, [m.name for m in self.attacked],
                               [m.name for m in self.pool_models], list(ph.reports), len(ph.dets), 0.0, shown)
        result = Protected(Photo(ph.out_rgb, pic.alpha, pic.name), report, pic, list(ph.refs), self.pool_models,
                           np.stack(ph.landmarks))
        if self.recheck or self.jpeg_quality is not None:
            result.check(result.image if self.recheck else None, self.jpeg_quality)
        report.seconds = ph.seconds + time.perf_counter() - t
        return result


def _grow(bar, n: int) -> None:
    """Add ``n`` faces to the bar's total (faces are counted as photos are read)."""
    bar.total += n
    widget = getattr(bar, "container", None)  # tqdm.notebook keeps the widget's own maximum
    if widget is not None:
        widget.children[1].max = bar.total
    bar.refresh()


def _n_ready(held) -> int:
    return sum(len(e.ready()) for e in held if isinstance(e, _PhotoJob))
