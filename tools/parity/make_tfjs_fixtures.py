"""Write tests/fixtures/parity/<model>.npz: outputs of the original pure-JS
TensorFlow.js runtime on fixed inputs, for facelab's tfjs interpreter to match.

    FACELAB_CACHE=... python tools/parity/make_tfjs_fixtures.py [--tfjs-dir DIR]

Needs node/npm and the fetched human-models package.  ``@tensorflow/tfjs`` (the
version human 3.3.6 was built with, pinned below) is installed with ``npm
install`` into a temporary folder unless ``--tfjs-dir`` names a folder that
already has it; tfjs-node is not used (it downloads a native binary).

Each fixture holds, for a batch of two images:
``input`` uint8 NHWC at the graph's input size (image 0: the face in
scikit-image's astronaut photo, image 1: seeded smooth noise; grey models get
the luma of the same), ``sub``/``mul`` (the graph is fed
``(float32(input) - sub) * mul``), one ``out:<node>`` float32 array per output
node, and ``tfjs_version``/``model_file``/``repaired`` for the record.
mobilefacenet is recorded twice: as shipped (``mobilefacenet.npz``; the JS
runtime reproduces its defect) and repaired (``mobilefacenet-repaired.npz``,
from the JSON that :func:`repair_mobilefacenet` writes).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from facelab.cache import require  # noqa: E402
from facelab.models import packages as P  # noqa: E402
from facelab.models.tfjs_graph import repair_mobilefacenet  # noqa: E402

TFJS_VERSION = "4.22.0"
SEED = 20240607
ASTRONAUT_FACE_BOX = (159, 52, 289, 182)  # x0, y0, x1, y1 around the MTCNN box of the face
FIXTURES = REPO / "tests" / "fixtures" / "parity"

# name: (json file, repaired?, size, channels, sub, mul, output nodes)
MODELS: dict[str, tuple[str, bool, int, int, float, float, list[str]]] = {
    "faceres": ("faceres.json", False, 224, 3, 0.0, 1.0, ["global_pooling/Mean", "gender_pred/Sigmoid", "age_pred/Softmax"]),
    "faceres-deep": ("faceres-deep.json", False, 224, 3, 0.0, 1.0, ["global_pooling/Mean", "gender_pred/Sigmoid", "age_pred/Softmax"]),
    "mobileface": ("mobileface.json", False, 112, 3, 0.0, 1.0, ["batchnorm0/add_1"]),
    "mobilefacenet": ("mobilefacenet.json", False, 112, 3, 127.5, 1 / 128, ["embeddings"]),
    "mobilefacenet-repaired": ("mobilefacenet.json", True, 112, 3, 127.5, 1 / 128, ["embeddings"]),
    "age": ("age.json", False, 64, 3, 0.0, 1.0, ["Identity"]),
    "gender-ssrnet-imdb": ("gender-ssrnet-imdb.json", False, 64, 3, 127.5, 2 / 255, ["Identity"]),
    "gender": ("gender.json", False, 64, 1, 127.5, 2 / 255, ["Identity"]),
    "emotion": ("emotion.json", False, 64, 1, 127.5, 2 / 255, ["Identity"]),
    "gear": ("gear.json", False, 198, 3, 0.0, 1 / 255, ["Identity", "Identity_1", "Identity_2"]),
}


def fixed_images(size: int, channels: int) -> np.ndarray:
    """Two uint8 NHWC images: the astronaut's face and seeded smooth noise."""
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop(ASTRONAUT_FACE_BOX).resize((size, size), Image.BILINEAR)
    rng = np.random.default_rng(SEED + size)
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    noise = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    rgb = np.stack([np.asarray(face), np.asarray(noise)])
    if channels == 1:
        luma = rgb.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    return rgb


def install_tfjs(into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    (into / "package.json").write_text('{"name": "facelab-parity", "private": true}')
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", f"@tensorflow/tfjs@{TFJS_VERSION}"]
    subprocess.run(cmd, cwd=into, check=True)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tfjs-dir", type=Path, help=f"folder with node_modules/@tensorflow/tfjs@{TFJS_VERSION}")
    ap.add_argument("--only", nargs="*", help="model names to regenerate (default: all)")
    args = ap.parse_args()
    if shutil.which("node") is None:
        sys.exit("node is needed to run the tfjs reference")
    names = args.only or list(MODELS)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facelab-parity-") as tmp:
        tmp = Path(tmp)
        tfjs_dir = args.tfjs_dir or install_tfjs(tmp / "tfjs")
        jobs, inputs = [], {}
        for name in names:
            json_name, repaired, size, ch, sub, mul, outputs = MODELS[name]
            model = require(P.HUMAN, json_name)
            require(P.HUMAN, json_name.replace(".json", ".bin"))
            if repaired:
                fixed = tmp / f"{name}.json"
                fixed.write_text(json.dumps(repair_mobilefacenet(json.loads(model.read_text()))))
                model_path = fixed
            else:
                model_path = model
            x = fixed_images(size, ch)
            inputs[name] = x
            (tmp / f"{name}.u8").write_bytes(x.tobytes())
            jobs.append({
                "name": name, "model": str(model_path), "weights_dir": str(model.parent),
                "input": str(tmp / f"{name}.u8"), "shape": list(x.shape), "sub": sub, "mul": mul,
                "outputs": outputs, "out_dir": str(tmp / "out" / name),
            })
        job_file = tmp / "job.json"
        job_file.write_text(json.dumps({"tfjs_dir": str(tfjs_dir), "jobs": jobs}))
        script = Path(__file__).with_name("tfjs_reference.mjs")
        proc = subprocess.run(["node", str(script), str(job_file)], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"tfjs reference failed:\n{proc.stderr}")
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        for res in summary["results"]:
            name = res["name"]
            json_name, repaired, size, ch, sub, mul, _ = MODELS[name]
            arrays = {
                "input": inputs[name],
                "sub": np.float32(sub),
                "mul": np.float32(mul),
                "tfjs_version": np.array(summary["tfjs"]),
                "model_file": np.array(json_name),
                "repaired": np.array(repaired),
            }
            for out in res["outputs"]:
                values = np.fromfile(out["file"], dtype=np.float32).reshape(out["shape"])
                arrays[f"out:{out['node']}"] = values
            path = FIXTURES / f"{name}.npz"
            np.savez_compressed(path, **arrays)
            print(f"{path.relative_to(REPO)}  ({path.stat().st_size / 1024:.0f} kB; tfjs {summary['tfjs']} {summary['backend']})")


if __name__ == "__main__":
    main()
