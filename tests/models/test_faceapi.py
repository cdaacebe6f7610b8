"""The face-api ResNet built from a synthetic weights manifest, checked
against a plain re-statement of face-api's forward pass (unfused conv, bias,
scale; zero-tensor concatenation for the down-block shortcuts)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.models.faceapi import BLOCKS, load_faceapi_resnet

CHANNELS = {"32": 32, "64": 64, "128": 128, "256": 256}


def _layer_shapes() -> list[tuple[str, list[int]]]:
    shapes = []

    def conv(prefix, k, cin, cout):
        shapes.extend([(f"{prefix}/conv/filters", [k, k, cin, cout]), (f"{prefix}/conv/bias", [cout]),
                       (f"{prefix}/scale/weights", [cout]), (f"{prefix}/scale/biases", [cout])])

    conv("conv32_down", 7, 3, 32)
    cin = 32
    for name, _ in BLOCKS:
        cout = CHANNELS[name[4:].split("_")[0]]
        conv(f"{name}/conv1", 3, cin, cout)
        conv(f"{name}/conv2", 3, cout, cout)
        cin = cout
    shapes.append(("fc", [256, 128]))
    return shapes


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Random weights written as a face-api manifest + .bin; the first filter
    uint8-quantised like the real file, the rest float32."""
    folder = tmp_path_factory.mktemp("faceapi")
    rng = np.random.default_rng(5)
    weights, specs, blobs = {}, [], []
    for name, shape in _layer_shapes():
        if name.endswith("filters"):
            fan_in = shape[0] * shape[1] * shape[2]
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif name.endswith("scale/weights"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "fc":
            value = rng.standard_normal(shape) / 16
        else:
            value = rng.standard_normal(shape) * 0.1
        spec = {"name": name, "shape": shape, "dtype": "float32"}
        if name == "conv32_down/conv/filters":
            q = rng.integers(0, 256, shape).astype(np.uint8)
            scale, low = 0.002, -0.25
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
            value = (q.astype(np.float64) * scale + low).astype(np.float32)
            blobs.append(q.tobytes())
        else:
            value = value.astype(np.float32)
            blobs.append(value.tobytes())
        weights[name] = value
        specs.append(spec)
    (folder / "net.bin").write_bytes(b"".join(blobs))
    manifest = folder / "net-weights_manifest.json"
    manifest.write_text(json.dumps([{"paths": ["net.bin"], "weights": specs}]))
    return manifest, weights


def reference(x_nhwc: torch.Tensor, w: dict) -> torch.Tensor:
    """face-api's forwardInput, written out in NHWC like the original."""
    t = lambda k: torch.from_numpy(w[k]).double()  # noqa: E731

    def conv_layer(x, prefix, stride, padding, relu):
        xc = x.permute(0, 3, 1, 2)
        if padding == "same":
            xc = F.pad(xc, (1, 1, 1, 1))
        y = F.conv2d(xc, t(f"{prefix}/conv/filters").permute(3, 2, 0, 1), stride=stride).permute(0, 2, 3, 1)
        y = (y + t(f"{prefix}/conv/bias")) * t(f"{prefix}/scale/weights") + t(f"{prefix}/scale/biases")
        return y.relu() if relu else y

    def residual(x, name, down):
        out = conv_layer(x, f"{name}/conv1", 2 if down else 1, "valid" if down else "same", True)
        out = conv_layer(out, f"{name}/conv2", 1, "same", False)
        if not down:
            return (out + x).relu()
        pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1)
        if pooled.shape[1:3] != out.shape[1:3]:
            n, h, w_, c = out.shape
            out = torch.cat([out, torch.zeros(n, 1, w_, c, dtype=out.dtype)], dim=1)
            out = torch.cat([out, torch.zeros(n, h + 1, 1, c, dtype=out.dtype)], dim=2)
        if pooled.shape[3] != out.shape[3]:
            pooled = torch.cat([pooled, torch.zeros_like(pooled)], dim=3)
        return (pooled + out).relu()

    out = conv_layer(x_nhwc.double(), "conv32_down", 2, "valid", True)
    out = F.max_pool2d(out.permute(0, 3, 1, 2), 3, 2).permute(0, 2, 3, 1)
    for name, kind in BLOCKS:
        out = residual(out, name, kind == "down")
    return out.mean(dim=(1, 2)) @ t("fc")


def test_matches_reference_and_exposes_layers(synthetic):
    manifest, weights = synthetic
    net = load_faceapi_resnet(manifest)
    assert net.layout == "NCHW" and net.default_output == "fc"
    x = torch.randn(3, 3, 150, 150, generator=torch.Generator().manual_seed(1)) * 0.3
    got = net(x, outputs=["maxpool", "conv128_down", "conv256_down_out", "fc"])
    want = reference(x.permute(0, 2, 3, 1), weights)
    assert got["fc"].shape == (3, 128) and got["fc"].dtype == torch.float32
    scale = want.abs().max()
    assert (got["fc"].double() - want).abs().max() <= 1e-5 * scale  # float32 vs float64 reference
    assert got["maxpool"].shape == (3, 32, 35, 35)
    assert got["conv128_down"].shape == (3, 128, 8, 8)
    assert got["conv256_down_out"].shape == (3, 256, 2, 2)
    assert net.layer_names()[:3] == ["conv32_down", "maxpool", "conv32_1"] and net.layer_names()[-1] == "fc"


def test_early_layers_do_not_run_the_rest(synthetic, monkeypatch):
    net = load_faceapi_resnet(synthetic[0])
    monkeypatch.setattr(net.blocks["conv64_down"], "forward", lambda x: pytest.fail("ran past the requested layer"))
    out = net(torch.zeros(1, 3, 150, 150), outputs=["conv32_3"])
    assert out["conv32_3"].shape == (1, 32, 35, 35)


def test_gradient_and_input_check(synthetic):
    net = load_faceapi_resnet(synthetic[0])
    x = torch.randn(2, 3, 150, 150, requires_grad=True)
    net(x)["fc"][:, :4].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="NCHW"):
        net(torch.zeros(1, 150, 150, 3))


def test_missing_weight_is_named(tmp_path, synthetic):
    manifest, _ = synthetic
    spec = json.loads(manifest.read_text())
    spec[0]["weights"] = [w for w in spec[0]["weights"] if w["name"] != "conv64_2/conv1/scale/biases"]
    # drop the same bytes from the shard so the manifest stays consistent
    sizes = [(w["name"], int(np.prod(w["shape"])) * (1 if "quantization" in w else 4))
             for w in json.loads(manifest.read_text())[0]["weights"]]
    blob, kept, pos = (manifest.parent / "net.bin").read_bytes(), [], 0
    for name, size in sizes:
        if name != "conv64_2/conv1/scale/biases":
            kept.append(blob[pos : pos + size])
        pos += size
    (tmp_path / "net.bin").write_bytes(b"".join(kept))
    (tmp_path / "m.json").write_text(json.dumps(spec))
    with pytest.raises(KeyError, match="conv64_2/conv1/scale/biases"):
        load_faceapi_resnet(tmp_path / "m.json")
