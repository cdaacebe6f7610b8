"""A frozen TensorFlow ``GraphDef`` (``.pb``) as a differentiable torch graph.

Built for the FaceNet Inception-ResNet-v1 export (``graph_final.pb``), but
general enough for similar frozen inference graphs.  Tensors keep TF's NHWC
semantics throughout (flatten order, concat and reduction axes); convolutions
run on permuted views, i.e. channels-last memory, without copies.

Export quirks handled here:

* SAME padding is TF's, asymmetric at stride 2 (explicit pad, docs/models.md pitfall 2).
* Reshape constants that bake in batch size 1 get the batch dimension of
  their input instead (pitfall 4), so any batch size works.
* Control-dependency inputs (``^node``) are ignored.

Only nodes needed for the requested outputs are evaluated.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .graph import Constant, Graph, Lambda
from .protobuf import read_graphdef

# tensorflow/core/framework/types.proto
TF_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}
_VALUE_FIELDS = ("float_val", "double_val", "int_val", "int64_val", "bool_val", "uint32_val", "uint64_val")


def tf_tensor_to_numpy(tensor: dict, where: str = "") -> np.ndarray:
    """Value of a decoded ``TensorProto``: ``tensor_content`` if present, else
    the typed ``*_val`` field, repeating its last value to fill the shape (TF's
    rule for splat constants)."""
    code = tensor.get("dtype", 0)
    if code not in TF_DTYPES:
        raise NotImplementedError(f"TensorFlow dtype {code} of constant {where!r} is not supported")
    dtype = np.dtype(TF_DTYPES[code])
    shape = [int(d.get("size", 0)) for d in tensor.get("tensor_shape", {}).get("dim", [])]
    count = math.prod(shape)
    if "tensor_content" in tensor:
        values = np.frombuffer(tensor["tensor_content"], dtype=dtype.newbyteorder("<"))
        if values.size != count:
            raise ValueError(f"constant {where!r}: tensor_content holds {values.size} values for shape {shape}")
        return values.astype(dtype).reshape(shape)
    if code == 19 and "half_val" in tensor:
        values = tensor["half_val"].astype(np.uint16).view(np.float16)
    else:
        values = next((tensor[f] for f in _VALUE_FIELDS if f in tensor), np.zeros(0, dtype))
    values = np.asarray(values).astype(dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size > count:
        raise ValueError(f"constant {where!r} holds {values.size} values for shape {shape}")
    return np.concatenate([values, np.full(count - values.size, values[-1], dtype)]).reshape(shape)


# --------------------------------------------------------------------------- ops


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding of one spatial dim: (before, after), more after when odd."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(x_nhwc: torch.Tensor, padding: str, ksize, strides, dilations=(1, 1)) -> list[int] | None:
    """F.pad argument (left, right, top, bottom) for SAME, ``None`` for VALID."""
    if padding == "VALID":
        return None
    if padding != "SAME":
        raise NotImplementedError(f"padding {padding!r}")
    top, bottom = _same_pads(x_nhwc.shape[1], ksize[0], strides[0], dilations[0])
    left, right = _same_pads(x_nhwc.shape[2], ksize[1], strides[1], dilations[1])
    return [left, right, top, bottom]


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class Conv2D(nn.Module):
    """TF Conv2D / DepthwiseConv2dNative (NHWC in and out), weight kept as OIHW."""

    def __init__(self, filt: np.ndarray, strides, padding: str, dilations, depthwise: bool):
        super().__init__()
        kh, kw, cin, cout = filt.shape
        # transposed by numpy: several times faster than torch's permute().contiguous() on big filters,
        # which made loading facenet-casia a third of a cold `facelab protect`
        if depthwise:  # [kh, kw, cin, multiplier] -> [cin*multiplier, 1, kh, kw]
            w = np.ascontiguousarray(filt.transpose(2, 3, 0, 1), dtype=np.float32).reshape(cin * cout, 1, kh, kw)
            self.groups = cin
        else:
            w = np.ascontiguousarray(filt.transpose(3, 2, 0, 1), dtype=np.float32)
            self.groups = 1
        self.register_buffer("weight", torch.from_numpy(w))
        self.ksize = (kh, kw)
        self.strides, self.padding, self.dilations = tuple(strides), padding, tuple(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _spatial_pads(x, self.padding, self.ksize, self.strides, self.dilations)
        x = _nchw(x)
        torch_pad = 0
        if pads is not None:
            if pads[0] == pads[1] and pads[2] == pads[3]:
                torch_pad = (pads[2], pads[0])
            else:
                x = F.pad(x, pads)
        y = F.conv2d(x, self.weight, None, self.strides, torch_pad, self.dilations, self.groups)
        return _nhwc(y)


class Pool(nn.Module):
    """TF MaxPool / AvgPool (NHWC); SAME average excludes the padding like TF."""

    def __init__(self, kind: str, ksize, strides, padding: str):
        super().__init__()
        self.kind, self.ksize, self.strides, self.padding = kind, tuple(ksize), tuple(strides), padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _spatial_pads(x, self.padding, self.ksize, self.strides)
        x = _nchw(x)
        if self.kind == "max":
            if pads is not None:
                x = F.pad(x, pads, value=-math.inf)
            return _nhwc(F.max_pool2d(x, self.ksize, self.strides))
        if pads is None:
            return _nhwc(F.avg_pool2d(x, self.ksize, self.strides))
        total = F.avg_pool2d(F.pad(x, pads), self.ksize, self.strides)
        ones = F.pad(torch.ones_like(x[:1, :1]), pads)
        return _nhwc(total / F.avg_pool2d(ones, self.ksize, self.strides))


class ChannelAffine(nn.Module):
    """Inference batch norm folded to ``x * scale + shift`` on the last axis."""

    def __init__(self, scale: np.ndarray, shift: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)))
        self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class Reshape(nn.Module):
    """Reshape to a constant shape whose leading (batch) entry, baked in as 1
    or -1 by the export, becomes the input's batch size."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = [int(s) for s in shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = list(self.shape)
        if shape and shape[0] in (1, -1) and x.ndim > 0:
            shape[0] = x.shape[0]
        return x.reshape(shape)


_ELEMENTWISE = {
    "Add": torch.add,
    "AddV2": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "RealDiv": torch.div,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
    "BiasAdd": torch.add,  # NHWC: the bias broadcasts over the last axis
    "SquaredDifference": lambda a, b: (a - b) ** 2,
}
_UNARY = {
    "Relu": torch.relu,
    "Relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Square": torch.square,
    "Sqrt": torch.sqrt,
    "Rsqrt": torch.rsqrt,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Exp": torch.exp,
    "Identity": lambda x: x,
    "Softmax": lambda x: torch.softmax(x, dim=-1),
}
_REDUCTIONS = {"Sum": torch.sum, "Mean": torch.mean, "Max": torch.amax, "Min": torch.amin}


# --------------------------------------------------------------------------- graph


def _ref(name: str) -> tuple[str, int]:
    """'node:1' -> ('node', 1); 'node' -> ('node', 0)."""
    base, _, idx = name.partition(":")
    return base, int(idx) if idx else 0


def _ints(attr: dict, key: str, default=None) -> list[int]:
    if key not in attr:
        return default
    return [int(v) for v in attr[key].get("list", {}).get("i", [])]


def _nhwc_hw(values: list[int], key: str, node: str) -> tuple[int, int]:
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise NotImplementedError(f"{key}={values} on node {node!r} (only spatial NHWC {key} supported)")
    return values[1], values[2]


class TFGraph(Graph):
    """A frozen GraphDef evaluated with torch ops; see module docstring."""

    layout = "NHWC"
    #: built once, only read afterwards: copies share them (``models.load`` hands every caller a deep copy,
    #: and copying facenet-casia's node table took 0.1 s of each load)
    _SHARED = ("_nodes", "_order", "_inputs", "_keys")

    def __deepcopy__(self, memo: dict) -> "TFGraph":
        for name in self._SHARED:
            memo[id(self.__dict__[name])] = self.__dict__[name]
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __init__(self, nodes: list[dict], input_name: str, default_output: str, source: str = "graph"):
        super().__init__()
        self.source = source
        self.input_name = input_name
        self.default_output = default_output
        self._nodes = {n["name"]: n for n in nodes}
        if input_name not in self._nodes:
            raise KeyError(f"{source} has no input node {input_name!r}")
        if default_output not in self._nodes:
            raise KeyError(f"{source} has no node {default_output!r}")
        shape = self._nodes[input_name].get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
        self.input_shape = [int(d.get("size", -1)) for d in shape]
        self._consts: dict[str, np.ndarray] = {}
        for n in nodes:
            if n["op"] == "Const":
                self._consts[n["name"]] = tf_tensor_to_numpy(n.get("attr", {}).get("value", {}).get("tensor", {}), n["name"])
        self._order = self._topological_order([default_output])
        self.ops = nn.ModuleDict()
        self._inputs: dict[str, list[tuple[str, int]]] = {}
        self._keys: dict[str, str] = {}
        built: dict[str, nn.Module] = {}
        for name in self._order:  # constants folded into an op (filters, axes, shapes) are not built
            if name != input_name and self._nodes[name]["op"] != "Const":
                built[name], self._inputs[name] = self._build(self._nodes[name])
        consumed = {base for refs in self._inputs.values() for base, _ in refs}
        for name in self._order:
            if name in consumed and self._nodes[name]["op"] == "Const":
                built[name], self._inputs[name] = self._build(self._nodes[name])
        for i, name in enumerate(n for n in self._order if n in built):
            self._keys[name] = f"n{i}"
            self.ops[f"n{i}"] = built[name]
        self._consts.clear()  # the ops hold what they need, in torch layout
        self._needed_cache: dict[tuple[str, ...], list[str]] = {}

    # ----------------------------------------------------------------- building

    def _data_inputs(self, node: dict) -> list[str]:
        return [i for i in node.get("input", []) if not i.startswith("^")]

    def _topological_order(self, outputs: Sequence[str]) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        for out in outputs:
            stack = [(out, False)]
            while stack:
                name, expanded = stack.pop()
                if expanded:
                    state[name] = 2
                    order.append(name)
                    continue
                if state.get(name) == 2:
                    continue
                if state.get(name) == 1:
                    raise ValueError(f"{self.source}: cycle through node {name!r}")
                if name not in self._nodes:
                    raise ValueError(f"{self.source}: input {name!r} refers to no node")
                state[name] = 1
                stack.append((name, True))
                if name == self.input_name:
                    continue
                for inp in reversed(self._data_inputs(self._nodes[name])):
                    base = _ref(inp)[0]
                    if state.get(base) != 2:
                        stack.append((base, False))
        return order

    def _const_input(self, node: dict, k: int, what: str) -> np.ndarray:
        ref = _ref(self._data_inputs(node)[k])[0]
        if ref not in self._consts:
            raise NotImplementedError(
                f"node {node['name']!r} ({node['op']}): {what} must be a constant, but comes from {ref!r}"
            )
        return self._consts[ref]

    def _build(self, node: dict) -> tuple[nn.Module, list[tuple[str, int]]]:
        op, name, attr = node["op"], node["name"], node.get("attr", {})
        inputs = [_ref(i) for i in self._data_inputs(node)]
        fmt = attr.get("data_format", {}).get("s", b"NHWC")
        if fmt not in (b"NHWC",):
            raise NotImplementedError(f"data_format {fmt.decode()} on node {name!r} ({op})")
        if op == "Const":
            value = self._consts[name]
            if value.dtype == np.float64:
                value = value.astype(np.float32)
            return Constant(value), []
        if op in ("Conv2D", "DepthwiseConv2dNative"):
            strides = _nhwc_hw(_ints(attr, "strides"), "strides", name)
            dilations = _nhwc_hw(_ints(attr, "dilations", [1, 1, 1, 1]), "dilations", name)
            padding = attr.get("padding", {}).get("s", b"").decode()
            if padding not in ("SAME", "VALID"):
                raise NotImplementedError(f"padding {padding!r} on node {name!r} ({op})")
            filt = self._const_input(node, 1, "the filter")
            return Conv2D(filt, strides, padding, dilations, op == "DepthwiseConv2dNative"), inputs[:1]
        if op in ("MaxPool", "AvgPool"):
            ksize = _nhwc_hw(_ints(attr, "ksize"), "ksize", name)
            strides = _nhwc_hw(_ints(attr, "strides"), "strides", name)
            padding = attr.get("padding", {}).get("s", b"").decode()
            if padding not in ("SAME", "VALID"):
                raise NotImplementedError(f"padding {padding!r} on node {name!r} ({op})")
            return Pool("max" if op == "MaxPool" else "avg", ksize, strides, padding), inputs
        if op in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"):
            if attr.get("is_training", {}).get("b", False):
                raise NotImplementedError(f"node {name!r} ({op}) has is_training=True; freeze the graph for inference")
            gamma, beta, mean, var = (self._const_input(node, k, w).astype(np.float64) for k, w in
                                      [(1, "scale"), (2, "offset"), (3, "mean"), (4, "variance")])
            eps = attr.get("epsilon", {}).get("f", 1e-4)
            scale = gamma / np.sqrt(var + np.float32(eps))
            return ChannelAffine(scale, beta - mean * scale), inputs[:1]
        if op == "ConcatV2":
            axis = int(self._const_input(node, len(inputs) - 1, "the axis"))
            return Lambda(lambda *xs, axis=axis: torch.cat(xs, dim=axis), f"concat axis={axis}"), inputs[:-1]
        if op == "Reshape":
            return Reshape(self._const_input(node, 1, "the shape").tolist()), inputs[:1]
        if op == "MatMul":
            ta, tb = attr.get("transpose_a", {}).get("b", False), attr.get("transpose_b", {}).get("b", False)

            def matmul(a, b, ta=ta, tb=tb):
                return (a.T if ta else a) @ (b.T if tb else b)

            return Lambda(matmul, f"matmul ta={ta} tb={tb}"), inputs
        if op in _REDUCTIONS:
            axes = np.atleast_1d(self._const_input(node, 1, "the axes")).tolist()
            keep = bool(attr.get("keep_dims", {}).get("b", False))
            fn = _REDUCTIONS[op]
            return Lambda(lambda x, fn=fn, axes=tuple(axes), keep=keep: fn(x, dim=axes, keepdim=keep),
                          f"{op} axes={axes} keep_dims={keep}"), inputs[:1]
        if op in _ELEMENTWISE:
            return Lambda(_ELEMENTWISE[op], op), inputs
        if op in _UNARY:
            return Lambda(_UNARY[op], op), inputs
        if op == "Squeeze":
            dims = _ints(attr, "squeeze_dims", [])
            return Lambda(lambda x, dims=tuple(dims): x.squeeze(dims) if dims else x.squeeze(), f"squeeze {dims}"), inputs
        raise NotImplementedError(f"TensorFlow op {op!r} (node {name!r}) is not supported by facelab's GraphDef loader")

    # ----------------------------------------------------------------- running

    def layer_names(self) -> list[str]:
        return [n for n in self._order if n != self.input_name and self._nodes[n]["op"] != "Const"]

    def _needed(self, outputs: tuple[str, ...]) -> list[str]:
        if outputs not in self._needed_cache:
            need: set[str] = set()
            stack = list(outputs)
            while stack:
                name = stack.pop()
                if name in need or name == self.input_name:
                    continue
                need.add(name)
                stack.extend(base for base, _ in self._inputs[name])
            self._needed_cache[outputs] = [n for n in self._order if n in need]
        return self._needed_cache[outputs]

    def _check_input(self, x: torch.Tensor) -> None:
        want = self.input_shape
        if want and (x.ndim != len(want) or any(w > 0 and w != s for w, s in zip(want[1:], x.shape[1:]))):
            raise ValueError(
                f"{self.source} expects input {self.input_name!r} of shape {['N'] + want[1:]} (NHWC); "
                f"got {tuple(x.shape)}"
            )

    def run(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        self._check_input(x)
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for name in self._needed(tuple(outputs)):
            args = []
            for base, idx in self._inputs[name]:
                if idx != 0:
                    raise NotImplementedError(f"node {name!r} reads output {idx} of {base!r}; only output 0 is supported")
                args.append(values[base])
            values[name] = self.ops[self._keys[name]](*args)
        return {n: values[n] for n in outputs}


def load_graphdef(path: Path | str, input_name: str = "input", default_output: str = "embeddings") -> TFGraph:
    """Build a :class:`TFGraph` from a frozen GraphDef file."""
    graph = read_graphdef(path)
    return TFGraph(graph["node"], input_name, default_output, source=str(path)).eval()
