"""Shallow models: the first layers of a face model, as shipped to the user side.

PMT (Wang et al., "Facial Data Minimization: Shallow Model as Your Privacy
Filter") splits the service's face model f into a *shallow model* E_c — its
first layers, run by the user — and the server model E_s (the rest).  The
paper cuts its PyTorch models after "the first five layers" without saying
what a layer is.  facelab's models come from four graph formats, so a layer
is defined once here, per graph type:

* **Graph formats with single ops** (TensorFlow.js, TF GraphDef, ONNX): a layer
  is one *convolution* (``Conv2D``, ``DepthwiseConv2dNative``, their fused
  variants, ONNX ``Conv``) together with the element-wise ops that follow it
  and read only from it (bias, batch norm, ReLU / ReLU6 / PReLU, which the
  graphs spell out as ``Maximum``/``Minimum``/``Mul``/``Add`` chains).  The
  layer's output is the last op of that chain, i.e. "conv + norm +
  activation", the usual meaning of a layer in a face CNN.  A residual
  ``Add`` that reads a shortcut, a pooling or a padding ends the chain, so a
  layer's output is never the sum of two branches.  Layers are numbered in
  the graph's evaluation order.
* **face-api's ResNet** (a hand-written :class:`~facelab.models.faceapi.FaceApiResNet`):
  the graph exposes only its stem conv and its residual blocks, so a layer is
  the stem (conv + ReLU) or one residual block (two convs + shortcut); the
  max-pool after the stem is not a layer.

``model.shallow(n)`` returns :class:`ShallowModel`, whose ``forward`` gives
E_c(x) — layer n's output, NCHW — and whose :meth:`ShallowModel.features`
gives every layer's output E_c^1(x) … E_c^n(x) (Alg. 2's layer aggregation).
Only the nodes those outputs need are evaluated, so a shallow model costs a
fraction of the full forward pass.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .. import validate

if TYPE_CHECKING:  # pragma: no cover
    from .zoo import FaceModel

#: ops that are element-wise on one layer's activations (plus constants)
ELEMENTWISE = frozenset({
    # TensorFlow / tfjs
    "Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", "Abs", "Neg", "BiasAdd", "FusedBatchNorm",
    "FusedBatchNormV3", "Relu", "Relu6", "Prelu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh",
    # ONNX modules of facelab.models.onnx_graph
    "PRelu", "BatchNorm", "BatchNormalization", "Clip", "LeakyRelu",
})


def is_conv(op: str) -> bool:
    """Whether a graph op is a convolution (regular, depthwise, fused or not)."""
    return "Conv" in op and "Transpose" not in op


def _graph_nodes(graph: nn.Module) -> list[tuple[str, str, list[str]]]:
    """(name, op, non-constant data inputs) of every computed node, in evaluation order."""
    from .graphdef import TFGraph
    from .onnx_graph import OnnxGraph
    from .tfjs_graph import TfjsGraph

    if isinstance(graph, TfjsGraph):
        return [(n, graph.op_of(n), [a for a in graph._args[n] if graph.op_of(a) != "Const"])
                for n in graph.layer_names()]
    if isinstance(graph, TFGraph):
        nodes = graph._nodes
        return [(n, nodes[n]["op"], [b for b, _ in graph._inputs.get(n, []) if nodes[b]["op"] != "Const"])
                for n in graph.layer_names()]
    if isinstance(graph, OnnxGraph):
        steps = graph._by_output
        return [(n, type(graph.ops[steps[n][1]]).__name__,
                 [a for a in steps[n][2] if a == graph.input_name or (a in steps and steps[a][1].startswith("n"))])
                for n in graph.layer_names()]
    raise TypeError(f"no layer definition for graphs of type {type(graph).__name__}")


def layer_outputs(graph: nn.Module) -> list[str]:
    """Names of the nodes that end each layer of ``graph`` (see the module doc), in order."""
    from .faceapi import FaceApiResNet

    if isinstance(graph, FaceApiResNet):
        return [n for n in graph.layer_names() if n not in ("maxpool", "global_avg", "fc")]
    nodes = _graph_nodes(graph)
    # ops computed from constants only (e.g. a PReLU slope negated in-graph) count as constants
    constant: set[str] = set()
    for name, op, inputs in nodes:
        if op != "Placeholder" and all(i in constant for i in inputs):
            constant.add(name)
    nodes = [(n, op, [i for i in ins if i not in constant]) for n, op, ins in nodes if n not in constant]
    ends = []
    for k, (name, op, _) in enumerate(nodes):
        if not is_conv(op):
            continue
        chain, last = {name}, name
        for other, other_op, inputs in nodes[k + 1:]:
            if other_op in ELEMENTWISE and inputs and all(i in chain for i in inputs):
                chain.add(other)
                last = other
        ends.append(last)
    return ends


class ShallowModel(nn.Module):
    """E_c: the first ``n_layers`` layers of a :class:`~facelab.models.FaceModel`.

    ``forward(x01)`` → E_c(x), the output of layer ``n_layers`` (N, C, h, w);
    :meth:`features` → [E_c^1(x), …, E_c^n(x)], every layer's output.  Inputs
    are what the face model takes (float RGB in [0,1], any size: resized to the
    model's input size, then its own preprocessing).  Gradients reach the pixels.
    """

    def __init__(self, model: "FaceModel", n_layers: int):
        super().__init__()
        ends = layer_outputs(model.graph)
        n = validate.integer(n_layers, "n_layers", hint=f"how many of {model.name}'s {len(ends)} layers the shallow model keeps")
        if n > len(ends):
            raise ValueError(
                f"n_layers={n} is beyond {model.name}'s depth: it has {len(ends)} layers "
                f"(a layer = one convolution with its norm/activation, see facelab.models.shallow); "
                f"pass n_layers between 1 and {len(ends)}")
        self.model = model
        self.n_layers = n
        self.layer_names = ends[:n]
        self.name = f"{model.name}[:{n}]"
        self.depth = len(ends)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layer_names}"

    def features(self, x01: torch.Tensor) -> list[torch.Tensor]:
        """E_c^l(x) for l = 1 … n_layers, each NCHW (Alg. 2, lines 2–6)."""
        out = self.model.layers(x01, self.layer_names)
        return [out[n] for n in self.layer_names]

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.model.layers(x01, self.layer_names[-1:])[self.layer_names[-1]]
