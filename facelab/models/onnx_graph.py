"""An ONNX model (``.onnx``) as a differentiable torch graph, NCHW.

Covers the inference ops of CNN face-embedding exports (opset 7..13): Conv,
PRelu, Relu, BatchNormalization, Add/Sub/Mul/Div, Gemm, MatMul, Flatten,
Reshape, pooling, Concat, Identity.  Weights are turned into torch buffers at
load; only nodes needed for the requested outputs run.

Export quirk handled: a Reshape whose constant shape bakes in batch size 1
(PyTorch 1.x exports, docs/models.md pitfall 4) gets the input's batch size.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .graph import Constant, Graph, Lambda
from .protobuf import read_onnx_model

# onnx TensorProto.DataType
ONNX_DTYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}
_TYPED_FIELD = {1: "float_data", 6: "int32_data", 7: "int64_data", 11: "double_data", 13: "uint64_data", 12: "uint64_data"}


def onnx_tensor_to_numpy(tensor: dict) -> np.ndarray:
    """Value of a decoded ONNX ``TensorProto`` (``raw_data`` or typed field)."""
    name = tensor.get("name", "")
    code = tensor.get("data_type", 0)
    if code not in ONNX_DTYPES:
        raise NotImplementedError(f"ONNX data type {code} of tensor {name!r} is not supported")
    if tensor.get("data_location", 0) == 1:
        raise NotImplementedError(f"tensor {name!r} keeps its data in an external file; not supported")
    dtype = np.dtype(ONNX_DTYPES[code])
    dims = [int(d) for d in tensor.get("dims", [])]
    if "raw_data" in tensor:
        values = np.frombuffer(tensor["raw_data"], dtype=dtype.newbyteorder("<")).astype(dtype)
    else:
        field = _TYPED_FIELD.get(code, "int32_data")  # int8/16, uint8/16, bool, float16 live in int32_data
        values = np.asarray(tensor.get(field, np.zeros(0)))
        values = values.astype(np.uint16).view(np.float16) if code == 10 else values.astype(dtype)
    if values.size != math.prod(dims):
        raise ValueError(f"ONNX tensor {name!r} holds {values.size} values for dims {dims}")
    return values.reshape(dims)


def _attrs(node: dict) -> dict:
    out = {}
    for a in node.get("attribute", []):
        for key in ("ints", "floats"):
            if key in a:
                out[a["name"]] = [v.item() for v in a[key]]
                break
        else:
            for key in ("i", "f", "s", "t"):
                if key in a:
                    out[a["name"]] = a[key].decode() if key == "s" else onnx_tensor_to_numpy(a[key]) if key == "t" else a[key]
                    break
            else:
                out[a["name"]] = a.get("strings", [])
    return out


# --------------------------------------------------------------------------- ops


class Conv(nn.Module):
    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, attrs: dict, where: str):
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(weight.astype(np.float32)))
        self.register_buffer("bias", None if bias is None else torch.from_numpy(bias.astype(np.float32)))
        nd = weight.ndim - 2
        if nd != 2:
            raise NotImplementedError(f"{nd}-D Conv (node {where!r}); only 2-D is supported")
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise NotImplementedError(f"Conv auto_pad={attrs['auto_pad']} (node {where!r})")
        self.stride = tuple(attrs.get("strides", [1, 1]))
        self.dilation = tuple(attrs.get("dilations", [1, 1]))
        self.groups = int(attrs.get("group", 1))
        pads = attrs.get("pads", [0, 0, 0, 0])  # [top, left, bottom, right]
        self.symmetric = pads[0] == pads[2] and pads[1] == pads[3]
        self.padding = (pads[0], pads[1]) if self.symmetric else (0, 0)
        self.explicit = None if self.symmetric else [pads[1], pads[3], pads[0], pads[2]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.explicit is not None:
            x = F.pad(x, self.explicit)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class PRelu(nn.Module):
    def forward(self, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * slope)


class BatchNorm(nn.Module):
    """Inference BatchNormalization on axis 1, folded to ``x * scale + shift``."""

    def __init__(self, gamma, beta, mean, var, eps: float):
        super().__init__()
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)


class Reshape(nn.Module):
    """ONNX Reshape to a constant shape (0 copies a dim); a leading 1 or -1 is
    the baked-in batch and becomes the input's batch size."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = [int(s) for s in shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(self.shape)]
        if shape and shape[0] in (1, -1) and x.ndim > 0:
            shape[0] = x.shape[0]
        return x.reshape(shape)


def _gemm(alpha: float, beta: float, ta: int, tb: int) -> Callable:
    def gemm(a, b, c=None):
        y = (a.T if ta else a) @ (b.T if tb else b)
        y = y * alpha if alpha != 1.0 else y
        return y if c is None else y + (c * beta if beta != 1.0 else c)

    return gemm


def _pool(kind: str, attrs: dict, where: str) -> Lambda:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or attrs.get("ceil_mode", 0):
        raise NotImplementedError(f"{kind} with auto_pad/ceil_mode (node {where!r})")
    k = tuple(attrs["kernel_shape"])
    s = tuple(attrs.get("strides", [1] * len(k)))
    pads = attrs.get("pads", [0] * 2 * len(k))
    explicit = [pads[1], pads[3], pads[0], pads[2]]
    include = bool(attrs.get("count_include_pad", 0))

    def pool(x):
        if kind == "MaxPool":
            return F.max_pool2d(F.pad(x, explicit, value=-math.inf) if any(explicit) else x, k, s)
        if not any(explicit) or include:
            return F.avg_pool2d(F.pad(x, explicit) if any(explicit) else x, k, s)
        ones = F.pad(torch.ones_like(x[:1, :1]), explicit)
        return F.avg_pool2d(F.pad(x, explicit), k, s) / F.avg_pool2d(ones, k, s)

    return Lambda(pool, f"{kind} k={k} s={s} pads={pads}")


_BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Max": torch.maximum, "Min": torch.minimum}
_UNARY = {
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Identity": lambda x: x,
    "Sqrt": torch.sqrt,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Exp": torch.exp,
    "GlobalAveragePool": lambda x: x.mean(dim=(2, 3), keepdim=True),
    "GlobalMaxPool": lambda x: x.amax(dim=(2, 3), keepdim=True),
}


# --------------------------------------------------------------------------- graph


class OnnxGraph(Graph):
    """An ONNX graph evaluated with torch ops; layer names are tensor names."""

    layout = "NCHW"

    def __init__(self, model: dict, default_output: str | None = None, source: str = "model"):
        super().__init__()
        self.source = source
        graph = model["graph"]
        self._consts = {t["name"]: onnx_tensor_to_numpy(t) for t in graph.get("initializer", [])}
        real_inputs = [v for v in graph.get("input", []) if v["name"] not in self._consts]
        if len(real_inputs) != 1:
            raise NotImplementedError(f"{source} has {len(real_inputs)} non-constant inputs; facelab expects one image input")
        self.input_name = real_inputs[0]["name"]
        dims = real_inputs[0].get("type", {}).get("tensor_type", {}).get("shape", {}).get("dim", [])
        self.input_shape = [int(d.get("dim_value", -1)) if "dim_value" in d else -1 for d in dims]
        graph_outputs = [v["name"] for v in graph.get("output", [])]
        self.default_output = default_output or graph_outputs[0]
        nodes = graph.get("node", [])
        self._producer: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if node["op_type"] == "Constant":
                self._consts[node["output"][0]] = _attrs(node)["value"]
                continue
            for out in node.get("output", []):
                self._producer[out] = i
        if self.default_output not in self._producer:
            raise KeyError(f"{source} has no node output {self.default_output!r}")
        self.ops = nn.ModuleDict()
        self._steps: list[tuple[str, str, list[str]]] = []  # (output, module key, inputs)
        built_consts: set[str] = set()
        for i, node in enumerate(nodes):
            if node["op_type"] == "Constant":
                continue
            if len(node.get("output", [])) != 1:
                raise NotImplementedError(f"node {node.get('name')!r} ({node['op_type']}) has several outputs")
            module, inputs = self._build(node)
            self.ops[f"n{i}"] = module
            for name in inputs:
                if name in self._consts and name not in built_consts:
                    self.ops[f"c{len(built_consts)}"] = Constant(self._consts[name])
                    self._steps.append((name, f"c{len(built_consts)}", []))
                    built_consts.add(name)
            self._steps.append((node["output"][0], f"n{i}", inputs))
        self._consts.clear()
        self._order = [s[0] for s in self._steps]
        self._by_output = {s[0]: s for s in self._steps}
        self._needed_cache: dict[tuple[str, ...], list[tuple[str, str, list[str]]]] = {}

    def _const(self, node: dict, k: int, what: str) -> np.ndarray:
        name = node["input"][k]
        if name not in self._consts:
            raise NotImplementedError(f"node {node.get('name')!r} ({node['op_type']}): {what} must be a constant")
        return self._consts[name]

    def _build(self, node: dict) -> tuple[nn.Module, list[str]]:
        op, where, attrs = node["op_type"], node.get("name") or node["output"][0], _attrs(node)
        inputs = [i for i in node.get("input", []) if i]
        if op == "Conv":
            bias = self._const(node, 2, "the bias") if len(inputs) > 2 else None
            return Conv(self._const(node, 1, "the weight"), bias, attrs, where), inputs[:1]
        if op == "BatchNormalization":
            g, b, m, v = (self._const(node, k, w) for k, w in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")])
            return BatchNorm(g, b, m, v, float(attrs.get("epsilon", 1e-5))), inputs[:1]
        if op == "PRelu":
            return PRelu(), inputs
        if op == "Reshape":
            shape = attrs["shape"] if "shape" in attrs else self._const(node, 1, "the shape").tolist()
            return Reshape(shape), inputs[:1]
        if op == "Flatten":
            axis = int(attrs.get("axis", 1))
            return Lambda(lambda x, axis=axis: x.reshape(math.prod(x.shape[:axis]), -1), f"flatten axis={axis}"), inputs
        if op == "Gemm":
            fn = _gemm(float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0)), attrs.get("transA", 0), attrs.get("transB", 0))
            return Lambda(fn, "gemm"), inputs
        if op == "MatMul":
            return Lambda(torch.matmul, "matmul"), inputs
        if op == "Concat":
            axis = int(attrs["axis"])
            return Lambda(lambda *xs, axis=axis: torch.cat(xs, dim=axis), f"concat axis={axis}"), inputs
        if op in ("MaxPool", "AveragePool"):
            return _pool(op, attrs, where), inputs
        if op in _BINARY:
            return Lambda(_BINARY[op], op), inputs
        if op in _UNARY:
            return Lambda(_UNARY[op], op), inputs
        raise NotImplementedError(f"ONNX op {op!r} (node {where!r}) is not supported by facelab's ONNX loader")

    # ----------------------------------------------------------------- running

    def layer_names(self) -> list[str]:
        return [name for name, key, _ in self._steps if key.startswith("n")]

    def _needed(self, outputs: tuple[str, ...]):
        if outputs not in self._needed_cache:
            need: set[str] = set()
            stack = list(outputs)
            while stack:
                name = stack.pop()
                if name in need or name == self.input_name:
                    continue
                need.add(name)
                stack.extend(self._by_output[name][2])
            self._needed_cache[outputs] = [s for s in self._steps if s[0] in need]
        return self._needed_cache[outputs]

    def run(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        want = self.input_shape
        if want and (x.ndim != len(want) or any(w > 0 and w != s for w, s in zip(want[1:], x.shape[1:]))):
            raise ValueError(f"{self.source} expects input {self.input_name!r} of shape {['N'] + want[1:]} (NCHW); got {tuple(x.shape)}")
        values = {self.input_name: x}
        for name, key, inputs in self._needed(tuple(outputs)):
            values[name] = self.ops[key](*(values[i] for i in inputs))
        return {n: values[n] for n in outputs}


def load_onnx(path: Path | str, default_output: str | None = None) -> OnnxGraph:
    """Build an :class:`OnnxGraph` from an ``.onnx`` file (default output: the
    graph's first output)."""
    return OnnxGraph(read_onnx_model(path), default_output, source=str(path)).eval()
