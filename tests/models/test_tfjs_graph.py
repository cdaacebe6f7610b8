"""The tfjs graph interpreter on tiny hand-written graphs, checked against
plain torch computations written here in NHWC terms (no weights needed)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.models.tfjs_graph import TfjsGraphError, load_tfjs_graph, repair_mobilefacenet

# ---------------------------------------------------------------------------
# Writing a model.json + .bin
# ---------------------------------------------------------------------------


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(values) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def _fused(*ops: str) -> dict:
    return {"list": {"s": [base64.b64encode(o.encode()).decode() for o in ops]}}


class ModelWriter:
    """Collects nodes and constants; ``write`` produces model.json + weights.bin.

    Constants are stored float32, float16 or uint8-affine-quantised; ``value``
    returns what the runtime must see after dequantisation (the reference)."""

    def __init__(self, input_shape=(-1, 8, 8, 3)):
        self.nodes: list[dict] = [{
            "name": "x", "op": "Placeholder",
            "attr": {"shape": {"shape": {"dim": [{"size": str(d)} for d in input_shape]}}, "dtype": {"type": "DT_FLOAT"}},
        }]
        self.specs: list[dict] = []
        self.blobs: list[bytes] = []
        self.values: dict[str, torch.Tensor] = {}

    def const(self, name: str, value, quant: str | None = None, dtype: str = "float32") -> str:
        arr = np.asarray(value, dtype=np.int32 if dtype == "int32" else np.float32)
        spec = {"name": name, "shape": list(arr.shape), "dtype": dtype}
        if quant == "float16":
            stored = arr.astype(np.float16)
            seen = stored.astype(np.float32)
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif quant == "uint8":
            lo, hi = float(arr.min()), float(arr.max())
            scale = (hi - lo) / 255 or 1.0
            stored = np.clip(np.rint((arr - lo) / scale), 0, 255).astype(np.uint8)
            seen = (stored.astype(np.float64) * scale + lo).astype(np.float32)
            spec["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
        else:
            stored = arr
            seen = arr
        self.specs.append(spec)
        self.blobs.append(stored.tobytes())
        self.values[name] = torch.from_numpy(np.array(seen))
        self.nodes.append({"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}})
        return name

    def node(self, name: str, op: str, inputs: list[str], **attr) -> str:
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def write(self, folder: Path, shuffle: bool = False) -> Path:
        nodes = list(self.nodes)
        if shuffle:  # converters do not promise topological order
            nodes = nodes[::-1]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "weights.bin").write_bytes(b"".join(self.blobs))
        model = {
            "format": "graph-model",
            "modelTopology": {"node": nodes, "library": {}, "versions": {}},
            "weightsManifest": [{"paths": ["weights.bin"], "weights": self.specs}],
        }
        path = folder / "model.json"
        path.write_text(json.dumps(model))
        return path


def conv_attrs(strides=(1, 1), padding="SAME", dilations=(1, 1), fused=None) -> dict:
    a = {
        "strides": _ints((1, *strides, 1)), "padding": _s(padding), "dilations": _ints((1, *dilations, 1)),
        "data_format": _s("NHWC"), "T": {"type": "DT_FLOAT"},
    }
    if fused is not None:
        a["fused_ops"] = _fused(*fused)
        a["num_args"] = {"i": str(len(fused))}
    return a


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def tf_conv(x_nhwc, w_hwio, stride, pads, dilation=1, depthwise=False):
    """Reference conv: explicit (top, bottom, left, right) pads, TF filter layout."""
    t, b, l, r = pads
    x = F.pad(nchw(x_nhwc), (l, r, t, b))
    if depthwise:
        kh, kw, cin, mult = w_hwio.shape
        w = w_hwio.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        y = F.conv2d(x, w, stride=stride, dilation=dilation, groups=cin)
    else:
        y = F.conv2d(x, w_hwio.permute(3, 2, 0, 1), stride=stride, dilation=dilation)
    return nhwc(y)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size,pads", [(8, (0, 1, 0, 1)), (7, (1, 1, 1, 1))])
def test_same_stride2_conv_pads_like_tensorflow(tmp_path, size, pads):
    """3×3/2 SAME: an even input is padded only bottom/right (asymmetric)."""
    m = ModelWriter((-1, size, size, 3))
    w = m.const("w", rand(3, 3, 3, 4, seed=1), quant="float16")
    b = m.const("b", rand(4, seed=2), quant="float16")
    m.node("conv", "_FusedConv2D", ["x", w, b], **conv_attrs((2, 2), fused=("BiasAdd", "Relu6")))
    g = load_tfjs_graph(m.write(tmp_path), "conv")
    x = rand(3, size, size, 3, seed=3) * 4
    want = torch.clamp(tf_conv(x, m.values["w"], 2, pads) + m.values["b"], 0, 6)
    got = g(x)["conv"]
    assert got.shape == (3, 4, 4, 4)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # symmetric padding would give a different answer: the test can tell them apart
    sym = torch.clamp(tf_conv(x, m.values["w"], 2, (1, 1, 1, 1)) + m.values["b"], 0, 6)
    if pads != (1, 1, 1, 1):
        assert (sym - got).abs().max() > 1e-3


def test_uint8_weights_are_dequantised_exactly(tmp_path):
    m = ModelWriter((-1, 6, 6, 2))
    w = m.const("w", rand(1, 1, 2, 3, seed=4), quant="uint8")
    m.node("conv", "Conv2D", ["x", w], **conv_attrs(padding="VALID"))
    g = load_tfjs_graph(m.write(tmp_path), "conv")
    x = rand(2, 6, 6, 2, seed=5)
    torch.testing.assert_close(g(x)["conv"], x @ m.values["w"][0, 0], rtol=1e-6, atol=1e-6)
    # the stored values are 8-bit: at most 256 distinct weights, equal to q*scale+min
    spec = json.loads((tmp_path / "model.json").read_text())["weightsManifest"][0]["weights"][0]["quantization"]
    q = (m.values["w"].double() - spec["min"]) / spec["scale"]
    assert torch.allclose(q, q.round(), atol=1e-4)


def test_depthwise_multiplier_and_dilation(tmp_path):
    m = ModelWriter((-1, 9, 9, 3))
    w = m.const("dw", rand(3, 3, 3, 2, seed=6), quant="uint8")
    b = m.const("b", rand(6, seed=7))
    m.node("dw_conv", "FusedDepthwiseConv2dNative", ["x", w, b],
           **conv_attrs(padding="VALID", dilations=(2, 2), fused=("BiasAdd",)))
    m.node("dw_same", "DepthwiseConv2dNative", ["x", w], **conv_attrs((2, 2), padding="SAME"))
    g = load_tfjs_graph(m.write(tmp_path), "dw_conv")
    x = rand(2, 9, 9, 3, seed=8)
    out = g(x, ["dw_conv", "dw_same"])
    want = tf_conv(x, m.values["dw"], 1, (0, 0, 0, 0), dilation=2, depthwise=True) + m.values["b"]
    torch.testing.assert_close(out["dw_conv"], want, rtol=1e-5, atol=1e-5)
    # TF depthwise output channel c·multiplier + k is input channel c, filter k
    c, k = 1, 1
    single = F.conv2d(nchw(x)[:, c:c + 1], m.values["dw"][:, :, c, k][None, None], dilation=2)
    torch.testing.assert_close(out["dw_conv"][..., c * 2 + k], nhwc(single)[..., 0] + m.values["b"][c * 2 + k],
                               rtol=1e-5, atol=1e-5)
    # 9 is odd: SAME/2 pads 1 on each side
    want_same = tf_conv(x, m.values["dw"], 2, (1, 1, 1, 1), depthwise=True)
    torch.testing.assert_close(out["dw_same"], want_same, rtol=1e-5, atol=1e-5)


def test_flatten_order_is_nhwc_and_batch_one_reshape_works_for_batches(tmp_path):
    """Reshape flattens in NHWC order; a constant baked with batch 1 still
    serves batch 3; _FusedMatMul applies BiasAdd and Relu."""
    m = ModelWriter((-1, 4, 4, 2))
    w = m.const("w", rand(1, 1, 2, 3, seed=9), quant="float16")
    m.node("conv", "Conv2D", ["x", w], **conv_attrs())
    shape = m.const("shape", [1, 48], dtype="int32")
    m.node("flat", "Reshape", ["conv", shape])
    k = m.const("k", rand(48, 5, seed=10))
    b = m.const("kb", rand(5, seed=11))
    m.node("fc", "_FusedMatMul", ["flat", k, b], transpose_a={"b": False}, transpose_b={"b": False},
           fused_ops=_fused("BiasAdd", "Relu"), num_args={"i": "1"})
    g = load_tfjs_graph(m.write(tmp_path), "fc")
    x = rand(3, 4, 4, 2, seed=12)
    conv = x @ m.values["w"][0, 0]
    want = F.relu(conv.reshape(3, 48) @ m.values["k"] + m.values["kb"])
    out = g(x, ["fc", "flat"])
    torch.testing.assert_close(out["flat"], conv.reshape(3, 48), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["fc"], want, rtol=1e-5, atol=1e-5)
    # NCHW flatten order would be a different vector
    assert (conv.permute(0, 3, 1, 2).reshape(3, 48) - out["flat"]).abs().max() > 1e-3


def test_prelu_pad_pool_reduce_and_normalise(tmp_path):
    """mobileface/mobilefacenet-style blocks: explicit Pad + VALID conv, PReLU
    as relu(x) + c·(x − |x|), Mean over H,W, Squeeze, L2 normalisation."""
    m = ModelWriter((-1, 6, 6, 3))
    pads = m.const("pads", [[0, 0], [1, 2], [2, 1], [0, 0]], dtype="int32")
    m.node("pad", "Pad", ["x", pads])
    w = m.const("w", rand(3, 3, 3, 4, seed=13))
    b = m.const("b", rand(4, seed=14))
    m.node("conv", "_FusedConv2D", ["pad", w, b], **conv_attrs(padding="VALID", fused=("BiasAdd",)))
    c = m.const("c", rand(4, seed=15))
    m.node("relu", "Relu", ["conv"])
    m.node("abs", "Abs", ["conv"])
    m.node("sub", "Sub", ["conv", "abs"])
    m.node("mul", "Mul", ["sub", c])
    m.node("prelu", "Add", ["relu", "mul"])
    m.node("pool", "MaxPool", ["prelu"], ksize=_ints((1, 3, 3, 1)), strides=_ints((1, 2, 2, 1)),
           padding=_s("SAME"), data_format=_s("NHWC"))
    axes = m.const("axes", [1, 2], dtype="int32")
    m.node("mean", "Mean", ["pool", axes], keep_dims={"b": True})
    m.node("squeeze", "Squeeze", ["mean"], squeeze_dims=_ints((1, 2)))
    m.node("square", "Square", ["squeeze"])
    last = m.const("last", [1], dtype="int32")
    m.node("sum", "Sum", ["square", last], keep_dims={"b": True})
    eps = m.const("eps", 1e-10)
    m.node("max", "Maximum", ["sum", eps])
    m.node("rsqrt", "Rsqrt", ["max"])
    m.node("emb", "Mul", ["squeeze", "rsqrt"])
    g = load_tfjs_graph(m.write(tmp_path, shuffle=True), "emb")

    x = rand(2, 6, 6, 3, seed=16)
    v = m.values
    xp = nhwc(F.pad(nchw(x), (2, 1, 1, 2)))
    conv = tf_conv(xp, v["w"], 1, (0, 0, 0, 0)) + v["b"]
    prelu = F.relu(conv) + v["c"] * (conv - conv.abs())
    # SAME 3/2 on 7×7: out 4, total pad 2 → 1 each side, padded with −inf
    pooled = nhwc(F.max_pool2d(F.pad(nchw(prelu), (1, 1, 1, 1), value=float("-inf")), 3, 2))
    feat = pooled.mean(dim=(1, 2))
    want = feat / feat.norm(dim=1, keepdim=True)
    out = g(x, ["emb", "prelu", "pool"])
    assert out["prelu"].shape == (2, 7, 7, 4) and out["pool"].shape == (2, 4, 4, 4)
    torch.testing.assert_close(out["prelu"], prelu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["emb"], want, rtol=1e-5, atol=1e-6)
    # layer_names is a topological order even though the file was reversed
    names = g.layer_names()
    assert "w" not in names and names.index("pad") < names.index("conv") < names.index("emb")


def test_avgpool_same_averages_valid_pixels_only(tmp_path):
    m = ModelWriter((-1, 4, 4, 1))
    m.node("avg", "AvgPool", ["x"], ksize=_ints((1, 3, 3, 1)), strides=_ints((1, 2, 2, 1)),
           padding=_s("SAME"), data_format=_s("NHWC"))
    g = load_tfjs_graph(m.write(tmp_path), "avg")
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4, 1)
    # SAME 3/2 on 4: pads 0 top/left, 1 bottom/right; windows rows {0,1,2},{2,3}
    img = x[0, :, :, 0]
    want = torch.tensor([[img[0:3, 0:3].mean(), img[0:3, 2:4].mean()],
                         [img[2:4, 0:3].mean(), img[2:4, 2:4].mean()]])
    torch.testing.assert_close(g(x)["avg"][0, :, :, 0], want)


def test_concat_softmax_slice_and_heads(tmp_path):
    m = ModelWriter((-1, 5, 5, 2))
    w1 = m.const("w1", rand(1, 1, 2, 3, seed=17))
    w2 = m.const("w2", rand(1, 1, 2, 2, seed=18))
    m.node("a", "Conv2D", ["x", w1], **conv_attrs())
    m.node("b", "Conv2D", ["x", w2], **conv_attrs())
    axis = m.const("axis", -1, dtype="int32")
    m.node("cat", "ConcatV2", ["a", "b", axis], N={"i": "2"})
    m.node("sm", "Softmax", ["cat"])
    axes = m.const("axes", [1, 2], dtype="int32")
    m.node("gmax", "Max", ["sm", axes], keep_dims={"b": False})
    begin = m.const("begin", [0, 1], dtype="int32")
    end = m.const("end", [0, 2], dtype="int32")
    strides = m.const("strides", [1, 1], dtype="int32")
    m.node("col", "StridedSlice", ["gmax", begin, end, strides], begin_mask={"i": "1"}, end_mask={"i": "1"},
           shrink_axis_mask={"i": "2"}, ellipsis_mask={"i": "0"}, new_axis_mask={"i": "0"})
    dim = m.const("dim", 1, dtype="int32")
    m.node("expand", "ExpandDims", ["col", dim])
    two = m.const("two", 2.0)
    m.node("half", "RealDiv", ["expand", two])
    m.node("sig", "Sigmoid", ["half"])
    g = load_tfjs_graph(m.write(tmp_path), "sig")
    x = rand(3, 5, 5, 2, seed=19)
    cat = torch.cat([x @ m.values["w1"][0, 0], x @ m.values["w2"][0, 0]], dim=-1)
    sm = torch.softmax(cat, dim=-1)
    gmax = sm.amax(dim=(1, 2))
    want = torch.sigmoid(gmax[:, 1:2] / 2)
    out = g(x, ["sig", "cat", "sm"])
    torch.testing.assert_close(out["cat"], cat, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["sm"], sm, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["sig"], want, rtol=1e-5, atol=1e-6)


def test_input_gradient_matches_reference(tmp_path):
    m = ModelWriter((-1, 8, 8, 3))
    w = m.const("w", rand(3, 3, 3, 4, seed=20), quant="float16")
    m.node("conv", "Conv2D", ["x", w], **conv_attrs((2, 2)))
    m.node("act", "Tanh", ["conv"])
    axes = m.const("axes", [1, 2], dtype="int32")
    m.node("mean", "Mean", ["act", axes], keep_dims={"b": False})
    g = load_tfjs_graph(m.write(tmp_path), "mean")
    x = rand(2, 8, 8, 3, seed=21).requires_grad_(True)
    g(x)["mean"].square().sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    torch.tanh(tf_conv(x_ref, m.values["w"], 2, (0, 1, 0, 1))).mean(dim=(1, 2)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    assert not any(b.requires_grad for b in g.buffers())


def test_run_evaluates_only_what_the_outputs_need(tmp_path):
    m = ModelWriter((-1, 4, 4, 1))
    m.node("cheap", "Relu", ["x"])
    m.node("other", "Neg", ["x"])
    g = load_tfjs_graph(m.write(tmp_path), "cheap")
    assert g._plan(("cheap",)) == ["x", "cheap"]
    out = g(torch.ones(1, 4, 4, 1), ["cheap"])
    assert list(out) == ["cheap"]


def test_unknown_op_names_op_and_node(tmp_path):
    m = ModelWriter((-1, 4, 4, 1))
    m.node("weird", "FancyOp", ["x"])
    with pytest.raises(NotImplementedError, match=r"'FancyOp'.*'weird'"):
        load_tfjs_graph(m.write(tmp_path), "weird")


def test_bad_default_output_and_shape_errors(tmp_path):
    m = ModelWriter((-1, 4, 4, 1))
    m.node("r", "Relu", ["x"])
    path = m.write(tmp_path)
    with pytest.raises(TfjsGraphError, match="nope"):
        load_tfjs_graph(path, "nope")
    g = load_tfjs_graph(path, "r")
    with pytest.raises(ValueError, match="NHWC"):
        g(torch.ones(1, 1, 4, 4))
    with pytest.raises(KeyError):
        g(torch.ones(1, 4, 4, 1), ["missing"])


def test_repair_refuses_a_graph_without_the_mobilefacenet_defects(tmp_path):
    m = ModelWriter((-1, 4, 4, 1))
    m.node("r", "Relu", ["x"])
    model = json.loads(m.write(tmp_path).read_text())
    with pytest.raises(TfjsGraphError, match="16"):
        repair_mobilefacenet(model)
