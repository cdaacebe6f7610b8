"""The GraphDef loader on a small graph built here (serialised with the
``protobuf`` package), checked against the same network written in plain torch
and, for TF's SAME padding, against onnxruntime's ``SAME_UPPER`` convolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.models.graphdef import load_graphdef
from test_protobuf import tf_messages

RNG = np.random.default_rng(7)
W = {
    "conv/w": RNG.standard_normal((3, 3, 3, 4)).astype(np.float32),
    "conv/b": RNG.standard_normal(4).astype(np.float32),
    "bn/gamma": RNG.uniform(0.5, 2, 4).astype(np.float32),
    "bn/beta": RNG.standard_normal(4).astype(np.float32),
    "bn/mean": RNG.standard_normal(4).astype(np.float32),
    "bn/var": RNG.uniform(0.1, 2, 4).astype(np.float32),
    "fc/w": RNG.standard_normal((28, 5)).astype(np.float32),
    "bn2/beta": RNG.standard_normal(5).astype(np.float32),
    "bn2/mean": RNG.standard_normal(5).astype(np.float32),
    "bn2/var": RNG.uniform(0.1, 2, 5).astype(np.float32),
}


class _Builder:
    def __init__(self):
        self.M = tf_messages()
        self.graph = self.M["GraphDef"]()

    def shape(self, proto, dims):
        for d in dims:
            proto.dim.add(size=d)

    def const(self, name, value, splat_shape=None, control=None):
        value = np.asarray(value)
        n = self.graph.node.add(name=name, op="Const", input=[f"^{control}"] if control else [])
        t = n.attr["value"].tensor
        if value.dtype == np.float32:
            t.dtype = 1
        else:
            value = value.astype(np.int32)
            t.dtype = 3
        n.attr["dtype"].type = t.dtype
        if splat_shape is not None:  # one value repeated over the shape (TF splat constant)
            self.shape(t.tensor_shape, splat_shape)
            t.float_val.append(float(value))
        elif value.ndim == 0:
            (t.float_val if t.dtype == 1 else t.int_val).append(value.item())
        else:
            self.shape(t.tensor_shape, value.shape)
            t.tensor_content = value.astype(value.dtype.newbyteorder("<")).tobytes()
        return name

    def op(self, name, op, inputs, **attrs):
        n = self.graph.node.add(name=name, op=op, input=inputs)
        for key, val in attrs.items():
            a = n.attr[key]
            if isinstance(val, bytes):
                a.s = val
            elif isinstance(val, bool):
                a.b = val
            elif isinstance(val, float):
                a.f = val
            elif isinstance(val, list):
                a.list.i.extend(val)
            else:
                a.type = val
        return name


def small_graph_bytes() -> bytes:
    """input [N,H,W,3] -> SAME stride-2 conv + BiasAdd + FusedBatchNorm + Relu,
    concat with a SAME stride-2 max-pool, x*0.5 + x, VALID avg-pool, Reshape
    with batch 1 baked in, MatMul, FusedBatchNormV3 behind a 4-D reshape,
    Identity, L2 normalisation as in FaceNet."""
    b = _Builder()
    g = b.graph
    inp = g.node.add(name="input", op="Placeholder")
    inp.attr["dtype"].type = 1
    b.shape(inp.attr["shape"].shape, [-1, -1, -1, 3])
    b.const("conv/w", W["conv/w"])
    b.op("conv/Conv2D", "Conv2D", ["input:0", "conv/w"], strides=[1, 2, 2, 1], padding=b"SAME", data_format=b"NHWC", dilations=[1, 1, 1, 1], T=1)
    b.const("conv/b", W["conv/b"])
    b.op("conv/BiasAdd", "BiasAdd", ["conv/Conv2D", "conv/b"], data_format=b"NHWC", T=1)
    for k in ("gamma", "beta", "mean", "var"):
        b.const(f"bn/{k}", W[f"bn/{k}"])
    b.op("bn/FusedBatchNorm", "FusedBatchNorm", ["conv/BiasAdd", "bn/gamma", "bn/beta", "bn/mean", "bn/var"], epsilon=0.001, is_training=False, data_format=b"NHWC", T=1)
    b.op("conv/Relu", "Relu", ["bn/FusedBatchNorm"], T=1)
    b.op("pool/MaxPool", "MaxPool", ["input"], ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding=b"SAME", data_format=b"NHWC", T=1)
    b.const("concat/axis", np.int32(3))
    b.op("concat", "ConcatV2", ["conv/Relu", "pool/MaxPool", "concat/axis"], N=2, T=1)
    b.const("mul/x", np.float32(0.5))
    b.op("mul", "Mul", ["mul/x", "concat"], T=1)
    b.op("add", "AddV2", ["concat", "mul"], T=1)
    b.op("avg", "AvgPool", ["add"], ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding=b"VALID", data_format=b"NHWC", T=1)
    b.const("flatten/shape", np.array([1, -1], np.int32), control="avg")
    b.op("flatten", "Reshape", ["avg", "flatten/shape"], T=1)
    b.const("fc/w", W["fc/w"])
    b.op("fc/MatMul", "MatMul", ["flatten", "fc/w"], transpose_a=False, transpose_b=False, T=1)
    b.const("bn2/shape", np.array([-1, 1, 1, 5], np.int32))
    b.op("bn2/Reshape", "Reshape", ["fc/MatMul", "bn2/shape"], T=1)
    b.const("bn2/gamma", np.float32(1.0), splat_shape=[5])
    for k in ("beta", "mean", "var"):
        b.const(f"bn2/{k}", W[f"bn2/{k}"])
    b.op("bn2/FusedBatchNormV3", "FusedBatchNormV3", ["bn2/Reshape", "bn2/gamma", "bn2/beta", "bn2/mean", "bn2/var"], epsilon=0.001, is_training=False, T=1)
    b.const("bn2/back", np.array([1, 5], np.int32))
    b.op("bottleneck", "Reshape", ["bn2/FusedBatchNormV3", "bn2/back"], T=1)
    b.op("bottleneck/Identity", "Identity", ["bottleneck"], T=1)
    b.op("l2/Square", "Square", ["bottleneck/Identity"], T=1)
    b.const("l2/axis", np.int32(1))
    b.op("l2/Sum", "Sum", ["l2/Square", "l2/axis"], keep_dims=True, T=1)
    b.const("l2/eps", np.float32(1e-10))
    b.op("l2/Maximum", "Maximum", ["l2/Sum", "l2/eps"], T=1)
    b.op("l2/Rsqrt", "Rsqrt", ["l2/Maximum"], T=1)
    b.op("embeddings", "Mul", ["bottleneck/Identity", "l2/Rsqrt"], T=1)
    b.op("unused/Switch", "Switch", ["input", "input"], T=1)  # not on the inference path: never built
    return g.SerializeToString()


def reference(x_nhwc: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same network in plain torch, NCHW, padding spelled out by hand."""
    t = lambda k: torch.from_numpy(W[k])  # noqa: E731
    x = x_nhwc.permute(0, 3, 1, 2)
    h = x.shape[-1]
    pad = (1, 1, 1, 1) if h % 2 else (0, 1, 0, 1)  # TF SAME, k=3, s=2: odd size symmetric, even: extra after
    y = F.conv2d(F.pad(x, pad), t("conv/w").permute(3, 2, 0, 1), stride=2) + t("conv/b").reshape(1, -1, 1, 1)
    bn = lambda v, g, b, m, var: (v - m) / torch.sqrt(var + 0.001) * g + b  # noqa: E731
    y = bn(y, *(t(f"bn/{k}").reshape(1, -1, 1, 1) for k in ("gamma", "beta", "mean", "var"))).relu()
    p = F.max_pool2d(F.pad(x, pad, value=-float("inf")), 3, 2)
    c = torch.cat([y, p], dim=1)
    a = F.avg_pool2d(c + 0.5 * c, 2, 2)
    flat = a.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF flattens NHWC
    z = bn(flat @ t("fc/w"), 1.0, t("bn2/beta"), t("bn2/mean"), t("bn2/var"))
    return {"concat": c.permute(0, 2, 3, 1), "bottleneck": z, "embeddings": F.normalize(z, dim=1)}


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("graphdef") / "small.pb"
    path.write_bytes(small_graph_bytes())
    return load_graphdef(path, input_name="input", default_output="embeddings")


@pytest.mark.parametrize("size", [8, 9])  # even: asymmetric SAME padding; odd: symmetric
def test_matches_plain_torch_at_batch_3(small_graph, size):
    x = torch.randn(3, size, size, 3, generator=torch.Generator().manual_seed(size))
    got = small_graph(x, outputs=["concat", "bottleneck", "embeddings"])
    want = reference(x)
    for name in want:
        assert got[name].shape == want[name].shape, name
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-5, msg=name)
    assert torch.allclose(got["embeddings"].norm(dim=1), torch.ones(3))
    assert small_graph.layout == "NHWC"


def test_layer_names_topological_and_gradient(small_graph):
    names = small_graph.layer_names()
    assert names.index("conv/Conv2D") < names.index("concat") < names.index("flatten") < names.index("embeddings")
    assert names[-1] == "embeddings" and "conv/w" not in names and "unused/Switch" not in names
    x = torch.randn(2, 8, 8, 3, requires_grad=True)
    small_graph(x)["embeddings"][:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in small_graph.buffers())


def test_only_needed_nodes_run(small_graph, monkeypatch):
    calls = []
    matmul = small_graph.ops[small_graph._keys["fc/MatMul"]]
    monkeypatch.setattr(matmul, "forward", lambda *a: calls.append(1) or torch.zeros(1))
    out = small_graph(torch.randn(1, 8, 8, 3), outputs=["concat"])
    assert list(out) == ["concat"] and calls == []


def test_deep_copy_owns_its_weights_and_shares_only_the_read_only_tables(small_graph):
    import copy

    twin = copy.deepcopy(small_graph)
    x = torch.randn(2, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(twin(x)["embeddings"], small_graph(x)["embeddings"])
    mine, theirs = dict(small_graph.named_buffers()), dict(twin.named_buffers())
    assert mine.keys() == theirs.keys() and mine
    assert all(mine[k].data_ptr() != theirs[k].data_ptr() for k in mine)
    for name in type(small_graph)._SHARED:
        assert getattr(twin, name) is getattr(small_graph, name)
    assert twin.ops is not small_graph.ops and twin._needed_cache is not small_graph._needed_cache


def test_wrong_input_shape_is_a_clear_error(small_graph):
    with pytest.raises(ValueError, match="NHWC"):
        small_graph(torch.randn(1, 3, 8, 8))


def test_unknown_op_names_op_and_node(tmp_path):
    M = tf_messages()
    g = M["GraphDef"]()
    p = g.node.add(name="input", op="Placeholder")
    p.attr["dtype"].type = 1
    g.node.add(name="weird/node", op="FancyOp", input=["input"])
    path = tmp_path / "weird.pb"
    path.write_bytes(g.SerializeToString())
    with pytest.raises(NotImplementedError, match=r"'FancyOp'.*'weird/node'"):
        load_graphdef(path, "input", "weird/node")
    with pytest.raises(KeyError, match="nothere"):
        load_graphdef(path, "input", "nothere")


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "broken.pb"
    path.write_bytes(small_graph_bytes()[:-7])
    with pytest.raises(ValueError, match="broken.pb"):
        load_graphdef(path)


@pytest.mark.parametrize("size", [10, 11])
def test_same_padding_matches_onnxruntime(tmp_path, size):
    """TF's SAME padding (stride 2: the extra row/column goes bottom/right) on a
    Conv2D + BiasAdd + Relu, checked against an independent implementation of
    the same rule: ONNX ``auto_pad="SAME_UPPER"`` run by onnxruntime.  An even
    input size is the asymmetric case, an odd one the symmetric case.  (This
    replaced an OpenCV check: OpenCV 5 dropped its TensorFlow importer.)"""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    b = _Builder()
    inp = b.graph.node.add(name="input", op="Placeholder")
    inp.attr["dtype"].type = 1
    b.shape(inp.attr["shape"].shape, [1, size, size, 3])
    b.const("w", W["conv/w"])
    b.op("conv", "Conv2D", ["input", "w"], strides=[1, 2, 2, 1], padding=b"SAME", data_format=b"NHWC", dilations=[1, 1, 1, 1], T=1)
    b.const("b", W["conv/b"])
    b.op("bias", "BiasAdd", ["conv", "b"], data_format=b"NHWC", T=1)
    b.op("out", "Relu", ["bias"], T=1)
    path = tmp_path / "conv.pb"
    path.write_bytes(b.graph.SerializeToString())

    w_oihw = np.ascontiguousarray(W["conv/w"].transpose(3, 2, 0, 1))  # TF HWIO -> ONNX OIHW
    ref = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["y"], ["out"])],
        "same_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, (size + 1) // 2, (size + 1) // 2])],
        [numpy_helper.from_array(w_oihw, "w"), numpy_helper.from_array(W["conv/b"], "b")],
    ), opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(ref)
    session = ort.InferenceSession(ref.SerializeToString(), providers=["CPUExecutionProvider"])

    x = np.random.default_rng(3).standard_normal((1, size, size, 3)).astype(np.float32)
    want = session.run(["out"], {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0].transpose(0, 2, 3, 1)
    got = load_graphdef(path, "input", "out")(torch.from_numpy(x))["out"].numpy()
    out = (size + 1) // 2
    assert got.shape == want.shape == (1, out, out, 4)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
