"""MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks"): the three-stage cascade, run in plain torch
with the weights that ship inside the facenet-pytorch wheel.

Why not call ``facenet_pytorch.MTCNN``: importing facenet-pytorch imports
torchvision, and torchvision imports ``torch._dynamo``; on 2 CPU cores that is
1.2 s of every cold ``facelab protect`` (issue target: 5 s for the whole
command), for one call to ``batched_nms``.  The cascade below gives the same
boxes, probabilities and landmarks as facenet-pytorch 2.6.0's ``MTCNN.detect``
(``tests/faces/test_mtcnn.py`` compares the two on every offline face and on
group photos), reads the weights from the installed wheel without importing
it, and needs neither torchvision nor OpenCV.

Conventions kept from that implementation, because the weights were fitted
with them: pixels in 0–255 normalised as (v − 127.5)/128; pyramid scales
12/min_face_size · factorᵏ while the shorter side stays ≥ 12 px; area
resampling; proposal boxes from the 12-px PNet cell at stride 2; box widths
without +1 in the first stage and with +1 in the later ones; strict score
thresholds in stages 2–3; the last NMS dividing by the smaller box ("Min").
One deliberate difference: a candidate whose crop is empty (entirely outside
the image) is dropped with its box, where facenet-pytorch drops only its crop
and misaligns the boxes that follow it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MIN_FACE_SIZE = 20
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709
CELL, STRIDE = 12, 2


class PNet(nn.Module):
    """Proposal net: fully convolutional, a face probability and a box offset per 12-px cell."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    # the dense weights were converted from Caffe, which flattens (W, H, C)
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """Refine net on 24×24 crops: a probability and a box offset per candidate."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_caffe_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48×48 crops: probability, box offset and five landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_caffe_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def weights_dir() -> Path:
    """The facenet-pytorch wheel's ``data/`` folder, found without importing the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face detection uses the MTCNN weights shipped with facenet-pytorch, which is not installed: "
                          "pip install --no-deps facenet-pytorch==2.6.0")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [n for n in ("pnet.pt", "rnet.pt", "onet.pt") if not (data / n).is_file()]
    if missing:
        raise FileNotFoundError(f"facenet-pytorch's MTCNN weights are missing from {data} ({', '.join(missing)}); "
                                f"reinstall it: pip install --no-deps --force-reinstall facenet-pytorch==2.6.0")
    return data


def _nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, *, plus_one: bool = False,
         by_min: bool = False) -> torch.Tensor:
    """Greedy non-maximum suppression: indices kept, best score first.

    A box is dropped when its overlap with a kept one exceeds ``threshold``;
    overlap is intersection over union, or over the smaller box (``by_min``).
    ``plus_one``: pixel-inclusive widths (x2 − x1 + 1), as MTCNN's later stages use.
    Ties in score (ONet's probability often saturates near 1.0) decide which of
    two overlapping boxes survives; they are broken by the same sorts
    facenet-pytorch's two NMS routines use (torch's unstable sort for IoU,
    numpy's default argsort for "Min"), so the same box wins.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    b = boxes.detach().cpu().double()
    one = 1.0 if plus_one else 0.0
    area = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    s = scores.detach().cpu()
    if by_min:
        order = torch.from_numpy(np.argsort(s.numpy())[::-1].copy())
    else:
        order = torch.sort(s, descending=True).indices
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = (torch.minimum(b[i, 2], b[rest, 2]) - torch.maximum(b[i, 0], b[rest, 0]) + one).clamp(min=0)
        h = (torch.minimum(b[i, 3], b[rest, 3]) - torch.maximum(b[i, 1], b[rest, 1]) + one).clamp(min=0)
        inter = w * h
        denom = torch.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to a square about its centre (side = the longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out = boxes.clone()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the later stages' box offsets (fractions of the pixel-inclusive size)."""
    size = torch.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], 1).repeat(1, 2)
    out = boxes.clone()
    out[:, :4] = boxes[:, :4] + offsets * size
    return out


def _crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Area-resampled ``size``×``size`` crops of the (clipped) boxes, and which boxes had a non-empty crop."""
    h, w = img.shape[2:]
    b = boxes[:, :4].trunc().int().cpu().numpy()
    x0, y0 = np.maximum(b[:, 0], 1) - 1, np.maximum(b[:, 1], 1) - 1
    x1, y1 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    ok = (x1 > x0) & (y1 > y0)
    # the crop indexed out of the batch, as facenet-pytorch takes it (its memory layout picks the kernels)
    crops = [F.interpolate(img[0, :, y0[k]:y1[k], x0[k]:x1[k]][None], size=(size, size), mode="area")
             for k in np.flatnonzero(ok)]
    batch = torch.cat(crops) if crops else img.new_zeros((0, 3, size, size))
    return (batch - 127.5) * 0.0078125, torch.from_numpy(ok)


class MTCNN(nn.Module):
    """The cascade with facenet-pytorch's defaults: minimum face 20 px, thresholds (0.6, 0.7, 0.7), factor 0.709."""

    def __init__(self, device=None, *, min_face_size: int = MIN_FACE_SIZE, thresholds=THRESHOLDS, factor: float = FACTOR):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        data = weights_dir()
        for name in ("pnet", "rnet", "onet"):
            getattr(self, name).load_state_dict(torch.load(data / f"{name}.pt", map_location="cpu", weights_only=True))
        self.min_face_size, self.thresholds, self.factor = min_face_size, tuple(thresholds), factor
        self.eval().requires_grad_(False)
        if device is not None:
            self.to(device)

    def scales(self, h: int, w: int) -> list[float]:
        """The image pyramid: 12/min_face_size · factorᵏ while the shorter side stays ≥ 12 px."""
        scale = CELL / self.min_face_size
        side = min(h, w) * scale
        out = []
        while side >= CELL:
            out.append(scale)
            scale *= self.factor
            side *= self.factor
        return out

    def _proposals(self, img: torch.Tensor) -> torch.Tensor:
        """Stage 1: PNet over the pyramid → candidate boxes (x1, y1, x2, y2, score) in image pixels."""
        h, w = img.shape[2:]
        found = []
        for s in self.scales(h, w):
            small = F.interpolate(img, size=(int(h * s + 1), int(w * s + 1)), mode="area")
            offsets, probs = self.pnet((small - 127.5) * 0.0078125)
            p = probs[0, 1]
            rows, cols = torch.nonzero(p >= self.thresholds[0], as_tuple=True)
            cell = torch.stack([cols, rows], 1).to(img.dtype)
            boxes = torch.cat([((STRIDE * cell + 1) / s).floor(), ((STRIDE * cell + CELL) / s).floor(),
                               p[rows, cols, None], offsets[0][:, rows, cols].T], 1)
            found.append(boxes[_nms(boxes[:, :4], boxes[:, 4], 0.5).to(boxes.device)])
        boxes = torch.cat(found) if found else img.new_zeros((0, 9))
        boxes = boxes[_nms(boxes[:, :4], boxes[:, 4], 0.7).to(boxes.device)]
        size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1).repeat(1, 2)
        return _square(torch.cat([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], 1))

    @torch.inference_mode()
    def detect(self, image: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces in one RGB ``(H, W, 3)`` image with values in 0–255.

        Returns float32 arrays: boxes ``(N, 4)`` as x1, y1, x2, y2; probabilities
        ``(N,)``; landmarks ``(N, 5, 2)`` (eyes, nose, mouth corners as x, y), in
        the order the last NMS keeps them (highest probability first).
        """
        device = next(self.parameters()).device
        # (1, H, W, 3) viewed as NCHW is channels-last in memory; the convolutions then take the same
        # kernels, and give the same bits, as facenet-pytorch's
        img = torch.as_tensor(np.asarray(image, dtype=np.float32), device=device)[None].permute(0, 3, 1, 2)
        boxes = self._proposals(img)
        if len(boxes):  # stage 2: refine
            crops, ok = _crops(img, boxes, 24)
            boxes = boxes[ok.to(boxes.device)]
            offsets, probs = self.rnet(crops)
            passed = probs[:, 1] > self.thresholds[1]
            boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], 1)
            keep = _nms(boxes[:, :4], boxes[:, 4], 0.7).to(boxes.device)
            boxes = _square(_regress(boxes[keep], offsets[passed][keep]))
        points = img.new_zeros((0, 5, 2))
        if len(boxes):  # stage 3: output
            crops, ok = _crops(img, boxes, 48)
            boxes = boxes[ok.to(boxes.device)]
            offsets, marks, probs = self.onet(crops)
            passed = probs[:, 1] > self.thresholds[2]
            boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], 1)
            marks = marks[passed]
            size = torch.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], 1)
            points = torch.stack([marks[:, :5], marks[:, 5:]], 2) * size[:, None, :] + boxes[:, None, :2] - 1
            boxes = _regress(boxes, offsets[passed])
            keep = _nms(boxes[:, :4], boxes[:, 4], 0.7, plus_one=True, by_min=True).to(boxes.device)
            boxes, points = boxes[keep], points[keep]
        boxes = boxes.cpu().numpy().astype(np.float32)
        return boxes[:, :4].reshape(-1, 4), boxes[:, 4].reshape(-1), points.cpu().numpy().astype(np.float32)
