"""Face detection with MTCNN (:mod:`facelab.faces.mtcnn`: facenet-pytorch's weights, run without torchvision).

One detector per device is built on first use and cached (:func:`get_detector`).
:func:`detect_faces` takes a float RGB ``(H, W, 3)`` array in [0, 1] and returns
plain float arrays (MTCNN's own ``detect()`` returns ``dtype=object`` arrays, or
``None`` when nothing is found), faces sorted largest first.

Very large images are detected on a downscaled copy (longer side at most
``max_side``) and the boxes/landmarks scaled back; very small ones are
upscaled and padded first, because MTCNN misses faces that fill a tiny frame.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_DETECTORS: dict[str, object] = {}
_LOCK = threading.Lock()

DEFAULT_MAX_SIDE = 1280  # detection copy of big photos: longer side in pixels
SMALL_SIDE = 160  # images with a shorter side below this are upscaled to it for detection
MIN_SIDE = 16  # below this, there is no face to find


def _device_key(device) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(torch.device(device))


def get_detector(device=None):
    """The MTCNN detector for ``device`` (default: CUDA if available, else CPU), built once.

    The detector returns every face; selection, sorting and score filtering
    happen in :func:`detect_faces`.
    """
    key = _device_key(device)
    with _LOCK:
        det = _DETECTORS.get(key)
        if det is None:
            from .mtcnn import MTCNN

            det = MTCNN(device=torch.device(key))
            _DETECTORS[key] = det
    return det


@dataclass
class Detections:
    """Faces found in one image, largest first, in that image's pixel coordinates.

    ``boxes`` (N, 4) as x1, y1, x2, y2; ``landmarks`` (N, 5, 2) as x, y of the
    left eye, right eye, nose tip, left and right mouth corners (left/right as
    seen in the image); ``scores`` (N,) MTCNN face probabilities.
    """

    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> "Detections":
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))

    def take(self, idx) -> "Detections":
        idx = np.asarray(idx, dtype=np.int64)
        return Detections(self.boxes[idx], self.landmarks[idx], self.scores[idx])


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    h, w = img.shape[:2]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _run(work: np.ndarray, device):
    """MTCNN on a float [0, 1] image; plain float arrays (empty when nothing is found)."""
    det = get_detector(device)
    boxes, probs, points = det.detect(np.ascontiguousarray(work * 255.0, dtype=np.float32))
    if len(boxes) == 0:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    return (
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(probs, dtype=np.float64).reshape(-1),
        np.asarray(points, dtype=np.float64).reshape(-1, 5, 2),
    )


def _needs_context(boxes: np.ndarray, probs: np.ndarray, min_score: float, shape) -> bool:
    """No face, or a confident face whose box runs well past the image border."""
    keep = probs >= min_score
    if not keep.any():
        return True
    h, w = shape
    b = boxes[keep]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    over = np.maximum.reduce([-b[:, 0] / bw, -b[:, 1] / bh, (b[:, 2] - w) / bw, (b[:, 3] - h) / bh])
    return bool((over > 0.1).any())


def detect_faces(
    image: np.ndarray,
    *,
    min_score: float = 0.9,
    max_side: int = DEFAULT_MAX_SIDE,
    device=None,
) -> Detections:
    """Detect faces in a float RGB ``(H, W, 3)`` image with values in [0, 1].

    Returns :class:`Detections` (possibly empty) sorted by box area, largest
    first, keeping faces with an MTCNN probability of at least ``min_score``.
    """
    from .. import validate as V

    if not isinstance(image, np.ndarray):
        raise TypeError(f"detect_faces expects a float (H, W, 3) numpy array in [0, 1] (see facelab.faces.read_image); "
                        f"got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detect_faces expects an (H, W, 3) RGB array, got shape {image.shape}")
    min_score = V.probability(min_score, "min_score", hint="the MTCNN face probability to accept, e.g. 0.9")
    max_side = V.integer(max_side, "max_side", minimum=MIN_SIDE, hint="the longer side of the detection copy in pixels")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        return Detections.empty()
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
    elif min(h, w) < SMALL_SIDE:
        scale = SMALL_SIDE / min(h, w)
    work = _resize(image, scale) if scale != 1.0 else image
    # A face filling the frame gives MTCNN's first stage no context and it
    # misplaces the landmarks: small images always get a grey border; others are
    # retried with one when nothing is found or a face runs past the border.
    pad = int(round(0.25 * min(work.shape[:2])))

    def padded() -> np.ndarray:
        return np.pad(work, ((pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0.5)

    if min(h, w) < SMALL_SIDE:
        boxes, probs, points = _run(padded(), device)
    else:
        boxes, probs, points = _run(work, device)
        if _needs_context(boxes, probs, min_score, work.shape[:2]):
            boxes, probs, points = _run(padded(), device)
        else:
            pad = 0
    keep = probs >= min_score
    boxes, probs, points = boxes[keep], probs[keep], points[keep]
    # back to the input's pixel grid (pixel centres at integers, as MTCNN reports them)
    boxes = (boxes - pad + 0.5) / scale - 0.5
    points = (points - pad + 0.5) / scale - 0.5
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-area, kind="stable")
    return Detections(
        boxes[order].astype(np.float32), points[order].astype(np.float32), probs[order].astype(np.float32)
    )
