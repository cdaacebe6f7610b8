"""facelab's MTCNN cascade against facenet-pytorch's, which it replaces at run time.

The oracle is the maintained implementation with the same weights: on every
photo of the offline set, on group photos and on edge cases both must give the
same boxes, probabilities and landmarks, bit for bit (the face set's crops,
and every committed result made from them, depend on it).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from facelab.faces import mtcnn as M


@pytest.fixture(scope="module")
def oracle():
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, select_largest=True, post_process=False).eval()


@pytest.fixture(scope="module")
def ours():
    return M.MTCNN()


def _same(oracle, ours, image: np.ndarray) -> int:
    """Assert identical detections on a float (H, W, 3) 0–255 image; the number of faces."""
    rb, rp, rl = oracle.detect(image, landmarks=True)
    boxes, probs, points = ours.detect(image)
    if rb is None:
        assert len(boxes) == len(probs) == len(points) == 0
        return 0
    # facenet-pytorch orders by box area, largest first; ours in NMS order
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
    np.testing.assert_array_equal(boxes[order], np.asarray(rb, np.float32))
    np.testing.assert_array_equal(probs[order], np.asarray(rp, np.float32))
    np.testing.assert_array_equal(points[order], np.asarray(rl, np.float32))
    return len(boxes)


@pytest.mark.faces
def test_same_detections_on_every_offline_photo(oracle, ours):
    from facelab.faces.io import read_image
    from facelab.faces.offline import entry_path, manifest

    paths = sorted({str(entry_path(e)) for e in manifest()["faces"]})
    assert len(paths) > 50
    found = sum(_same(oracle, ours, np.ascontiguousarray(read_image(p) * 255.0, dtype=np.float32)) for p in paths)
    assert found >= len(manifest()["faces"])  # every labelled face, plus unlabelled ones


def test_same_detections_on_group_crops_and_blanks(oracle, ours, astronaut):
    img = astronaut.astype(np.float32)
    group = np.concatenate([img, img[:, ::-1], img[::-1]], axis=1)  # an upside-down face too
    assert _same(oracle, ours, np.ascontiguousarray(group)) >= 2
    assert _same(oracle, ours, np.ascontiguousarray(img[30:230, 150:300])) == 1  # face filling the frame
    assert _same(oracle, ours, np.full((120, 160, 3), 128.0, np.float32)) == 0
    assert _same(oracle, ours, np.random.default_rng(0).uniform(0, 255, (200, 260, 3)).astype(np.float32)) >= 0


def test_nms_matches_torchvision_and_min_overlap():
    from torchvision.ops import nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=g) * 60], 1)
    scores = torch.rand(300, generator=g)
    for t in (0.3, 0.5, 0.7):
        assert torch.equal(M._nms(boxes, scores, t), nms(boxes, scores, t))
    # "Min": a box inside a kept one goes however small it is
    nested = torch.tensor([[0.0, 0, 100, 100], [10, 10, 30, 30], [200, 200, 220, 220]])
    assert M._nms(nested, torch.tensor([0.9, 0.8, 0.7]), 0.7, plus_one=True, by_min=True).tolist() == [0, 2]
    assert M._nms(nested, torch.tensor([0.9, 0.8, 0.7]), 0.7).tolist() == [0, 1, 2]
    assert M._nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_pyramid_and_weights():
    det = M.MTCNN()
    scales = det.scales(512, 512)
    assert scales[0] == pytest.approx(12 / 20) and all(b == pytest.approx(a * 0.709) for a, b in zip(scales, scales[1:]))
    assert 512 * scales[-1] >= 12 > 512 * scales[-1] * 0.709
    assert det.scales(19, 400) == []
    assert {p.name for p in M.weights_dir().iterdir()} >= {"pnet.pt", "rnet.pt", "onet.pt"}
    assert not any(p.requires_grad for p in det.parameters())


def test_detection_imports_neither_torchvision_nor_facenet_pytorch(astronaut):
    """The point of the module: a cold `facelab protect` does not pay for torchvision's import."""
    code = ("import sys, numpy as np; from skimage import data; from facelab.faces import detect_faces; "
            "d = detect_faces(data.astronaut() / 255.0); assert len(d) == 1, len(d); "
            "print(sorted(m for m in ('torchvision', 'facenet_pytorch', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
