"""The ONNX loader on a small model built with ``onnx.helper``, checked
against onnxruntime and against the same network in plain torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.models.onnx_graph import load_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(11)
W = {
    "w1": RNG.standard_normal((6, 3, 3, 3)).astype(np.float32),
    "b1": RNG.standard_normal(6).astype(np.float32),
    "gamma": RNG.uniform(0.5, 2, 6).astype(np.float32),
    "beta": RNG.standard_normal(6).astype(np.float32),
    "mean": RNG.standard_normal(6).astype(np.float32),
    "var": RNG.uniform(0.1, 2, 6).astype(np.float32),
    "slope": RNG.uniform(-0.5, 0.5, (6, 1, 1)).astype(np.float32),
    "wd": RNG.standard_normal((6, 1, 3, 3)).astype(np.float32),
    "fc_w": RNG.standard_normal((7, 6 * 3 * 3)).astype(np.float32),
    "fc_b": RNG.standard_normal(7).astype(np.float32),
}


def small_model_bytes() -> bytes:
    """Conv stride 2 with asymmetric pads, BatchNormalization, PRelu,
    depthwise Conv + residual Add, MaxPool, Reshape with batch 1 baked in
    (from a Constant node), Gemm with transB, Relu."""
    init = [numpy_helper.from_array(v, k) for k, v in W.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", strides=[2, 2], pads=[0, 0, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("PRelu", ["bn", "slope"], ["act"], name="prelu"),
        helper.make_node("Conv", ["act", "wd"], ["dw"], name="dw", group=6, pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Add", ["act", "dw"], ["res"], name="add"),
        helper.make_node("MaxPool", ["res"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, -1], np.int64))),
        helper.make_node("Reshape", ["pool", "shape"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], name="fc", transB=1, alpha=1.0, beta=1.0),
        helper.make_node("Relu", ["fc"], ["output"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 7])], initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(x: torch.Tensor) -> dict[str, torch.Tensor]:
    t = lambda k: torch.from_numpy(W[k])  # noqa: E731
    c = F.conv2d(F.pad(x, (0, 1, 0, 1)), t("w1"), t("b1"), stride=2)  # pads [t,l,b,r] = [0,0,1,1]
    c = (c - t("mean")[:, None, None]) / torch.sqrt(t("var")[:, None, None] + 1e-3) * t("gamma")[:, None, None] + t("beta")[:, None, None]
    act = torch.where(c > 0, c, c * t("slope"))
    res = act + F.conv2d(act, t("wd"), padding=1, groups=6)
    flat = F.max_pool2d(res, 2, 2).flatten(1)
    return {"act": act, "output": torch.relu(flat @ t("fc_w").T + t("fc_b"))}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    path.write_bytes(small_model_bytes())
    return path


def test_matches_onnxruntime_and_plain_torch(model_path):
    g = load_onnx(model_path)
    assert g.layout == "NCHW" and g.default_output == "output"
    x = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    got = g(x, outputs=["act", "output"])
    want = reference(x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-5, msg=name)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    for i in range(4):  # the baked [1, -1] reshape: onnxruntime takes one image at a time
        ort_out = sess.run(["output"], {"input": x[i : i + 1].numpy()})[0]
        np.testing.assert_allclose(got["output"][i : i + 1].numpy(), ort_out, atol=1e-5, rtol=1e-5)


def test_layer_names_gradient_and_errors(model_path, tmp_path):
    g = load_onnx(model_path, default_output="act")
    assert g.layer_names() == ["c1", "bn", "act", "dw", "res", "pool", "flat", "fc", "output"]
    x = torch.randn(1, 3, 12, 12, requires_grad=True)
    g(x)["act"].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="NCHW"):
        g(torch.randn(1, 12, 12, 3))
    with pytest.raises(KeyError):
        g(x, outputs=["nope"])

    bad = helper.make_model(helper.make_graph(
        [helper.make_node("Einsum", ["input"], ["y"], name="strange", equation="ij->ji")], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    ))
    (tmp_path / "bad.onnx").write_bytes(bad.SerializeToString())
    with pytest.raises(NotImplementedError, match=r"'Einsum'.*'strange'"):
        load_onnx(tmp_path / "bad.onnx")
    (tmp_path / "cut.onnx").write_bytes(model_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.onnx"):
        load_onnx(tmp_path / "cut.onnx")
