"""What :func:`facelab.protect` hands back: the protected photo (:class:`Protected`) and its report.

:class:`ProtectReport` holds, per face, each pool model's similarity to the original face before and
after protection (:class:`ModelScore`, :class:`FaceReport`); :meth:`Protected.check` re-reads a saved
file (or a JPEG copy), re-detects and re-aligns its faces and scores them again, as a scraper would.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .faces.align import similarity_transform, warp_crop
from .faces.detect import detect_faces
from .photo import Photo, encode


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

    ok: ClassVar[bool] = True  # False on protect_many's ProtectFailure

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
