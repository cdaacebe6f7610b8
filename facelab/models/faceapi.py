"""face-api's face recognition net (a port of dlib's ResNet-29
``dlib_face_recognition_resnet_model_v1``), built in torch from its tfjs
weights manifest.

face-api ships only weights; the architecture is code.  This module
re-expresses it (docs/models.md, "faceapi.py"):

* every conv layer is conv + bias, then a per-channel scale (mul, add),
  then ReLU except on the second conv of a residual block;
* stem: 7×7 stride-2 VALID conv layer, 3×3 stride-2 VALID max-pool;
* residual blocks (two 3×3 SAME convs, identity shortcut, ReLU after the sum)
  at 32, 64, 128 and 256 channels;
* "down" blocks: first conv 3×3 stride-2 VALID; shortcut = 2×2 stride-2 VALID
  average pool, zero channels appended when the width doubles; when the
  residual branch comes out one smaller, a zero row (bottom) and column
  (right) are appended to it;
* mean over H, W, then a [256, 128] matrix: the 128-d descriptor (not
  normalised; compare with L2 distance, threshold about 0.6).

Input: NCHW float32, ``(RGB 0..255 − [122.782, 117.001, 104.298]) / 255``
at 150×150, the tensor face-api feeds the net.  The conv bias and scale are
folded into the conv weights at load (computed in float64).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .graph import Graph
from .tfjs_weights import read_weights_manifest_file

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 150

# (name, kind) in evaluation order; kind: "down" = stride-2 residual block
BLOCKS = (
    ("conv32_1", "same"), ("conv32_2", "same"), ("conv32_3", "same"),
    ("conv64_down", "down"), ("conv64_1", "same"), ("conv64_2", "same"), ("conv64_3", "same"),
    ("conv128_down", "down"), ("conv128_1", "same"), ("conv128_2", "same"),
    ("conv256_down", "down"), ("conv256_1", "same"), ("conv256_2", "same"), ("conv256_down_out", "down"),
)


class ConvScale(nn.Module):
    """conv (TF HWIO filters) + bias, then ``* scale_weights + scale_biases``,
    folded into one conv; SAME (stride 1) or VALID padding."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, stride: int, padding: str):
        super().__init__()
        try:
            filt = weights[f"{prefix}/conv/filters"].double()
            bias = weights[f"{prefix}/conv/bias"].double()
            s_w = weights[f"{prefix}/scale/weights"].double()
            s_b = weights[f"{prefix}/scale/biases"].double()
        except KeyError as e:
            raise KeyError(f"face-api recognition weights lack {e.args[0]!r}; is this face_recognition_model?") from None
        w = filt.permute(3, 2, 0, 1) * s_w.reshape(-1, 1, 1, 1)
        self.register_buffer("weight", w.float().contiguous())
        self.register_buffer("bias", (bias * s_w + s_b).float())
        k = filt.shape[0]
        if padding == "same" and (stride != 1 or k % 2 != 1):
            raise ValueError("SAME padding is only used with stride 1 and odd kernels in this net")
        self.stride = stride
        self.padding = k // 2 if padding == "same" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class Residual(nn.Module):
    """Two conv layers with a shortcut; ``down`` halves the size (see module doc)."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ConvScale(weights, f"{prefix}/conv1", 2 if down else 1, "valid" if down else "same")
        self.conv2 = ConvScale(weights, f"{prefix}/conv2", 1, "same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        shortcut = x
        if self.down:
            shortcut = F.avg_pool2d(x, 2, 2)
            if out.shape[-2:] != shortcut.shape[-2:]:
                out = F.pad(out, (0, 1, 0, 1))  # one zero column right, one zero row below
            extra = out.shape[1] - shortcut.shape[1]
            if extra:
                shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, extra))  # zero channels appended
        return torch.relu(out + shortcut)


class FaceApiResNet(Graph):
    """The face-api recognition net as a :class:`Graph` (NCHW).

    Layer names: ``conv32_down`` (stem conv), ``maxpool``, the residual block
    names of :data:`BLOCKS`, ``global_avg`` (N×256) and ``fc`` (the descriptor).
    """

    layout = "NCHW"
    default_output = "fc"

    def __init__(self, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.stem = ConvScale(weights, "conv32_down", 2, "valid")
        self.blocks = nn.ModuleDict({name: Residual(weights, name, kind == "down") for name, kind in BLOCKS})
        if "fc" not in weights or tuple(weights["fc"].shape) != (256, 128):
            raise KeyError("face-api recognition weights lack the [256, 128] 'fc' matrix")
        self.register_buffer("fc", weights["fc"].float().contiguous())
        self._names = ["conv32_down", "maxpool", *self.blocks.keys(), "global_avg", "fc"]

    def layer_names(self) -> list[str]:
        return list(self._names)

    def run(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"face-api ResNet expects NCHW input (N, 3, {INPUT_SIZE}, {INPUT_SIZE}); got {tuple(x.shape)}")
        stages = [
            ("conv32_down", lambda t: torch.relu(self.stem(t))),
            ("maxpool", lambda t: F.max_pool2d(t, 3, 2)),
            *self.blocks.items(),
            ("global_avg", lambda t: t.mean(dim=(2, 3))),
            ("fc", lambda t: t @ self.fc),
        ]
        missing = set(outputs)
        got: dict[str, torch.Tensor] = {}
        for name, stage in stages:
            if not missing:
                break  # evaluate only as far as the deepest requested layer
            x = stage(x)
            if name in missing:
                got[name] = x
                missing.discard(name)
        return {n: got[n] for n in outputs}


def load_faceapi_resnet(manifest_path: Path | str) -> FaceApiResNet:
    """Build the net from ``face_recognition_model-weights_manifest.json``
    (its ``.bin`` shard next to it)."""
    return FaceApiResNet(read_weights_manifest_file(manifest_path)).eval()
