"""facelab's protobuf wire-format reader against messages encoded by the
``protobuf`` and ``onnx`` packages (independent encoders), plus hand-made
edge cases: negative varints, packed and unpacked repeated fields, unknown
fields, truncation."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from facelab.models import protobuf as pb


# ---------------------------------------------------------------------------
# TensorFlow GraphDef subset, defined at run time with google.protobuf (the
# field numbers and types of tensorflow/core/framework/*.proto).  Shared with
# test_graphdef.py, which builds small graphs with it.


@functools.lru_cache(maxsize=None)
def tf_messages() -> dict:
    """Message classes GraphDef, NodeDef, AttrValue, ListValue, TensorProto,
    TensorShapeProto generated from a descriptor built here."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(name="facelab_test_tf_graph.proto", package="tftest", syntax="proto3")

    def message(name, fields, oneof=None):
        m = fdp.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if oneof:
                f.oneof_index = 0
        return m

    message("Dim", [("size", 1, F.TYPE_INT64, opt, None), ("name", 2, F.TYPE_STRING, opt, None)])
    message("TensorShapeProto", [("dim", 2, F.TYPE_MESSAGE, rep, ".tftest.Dim"), ("unknown_rank", 3, F.TYPE_BOOL, opt, None)])
    message(
        "TensorProto",
        [
            ("dtype", 1, F.TYPE_INT32, opt, None),
            ("tensor_shape", 2, F.TYPE_MESSAGE, opt, ".tftest.TensorShapeProto"),
            ("tensor_content", 4, F.TYPE_BYTES, opt, None),
            ("float_val", 5, F.TYPE_FLOAT, rep, None),
            ("double_val", 6, F.TYPE_DOUBLE, rep, None),
            ("int_val", 7, F.TYPE_INT32, rep, None),
            ("int64_val", 10, F.TYPE_INT64, rep, None),
            ("bool_val", 11, F.TYPE_BOOL, rep, None),
        ],
    )
    message(
        "ListValue",
        [
            ("s", 2, F.TYPE_BYTES, rep, None),
            ("i", 3, F.TYPE_INT64, rep, None),
            ("f", 4, F.TYPE_FLOAT, rep, None),
            ("b", 5, F.TYPE_BOOL, rep, None),
            ("type", 6, F.TYPE_INT32, rep, None),
            ("shape", 7, F.TYPE_MESSAGE, rep, ".tftest.TensorShapeProto"),
        ],
    )
    message(
        "AttrValue",
        [
            ("list", 1, F.TYPE_MESSAGE, opt, ".tftest.ListValue"),
            ("s", 2, F.TYPE_BYTES, opt, None),
            ("i", 3, F.TYPE_INT64, opt, None),
            ("f", 4, F.TYPE_FLOAT, opt, None),
            ("b", 5, F.TYPE_BOOL, opt, None),
            ("type", 6, F.TYPE_INT32, opt, None),
            ("shape", 7, F.TYPE_MESSAGE, opt, ".tftest.TensorShapeProto"),
            ("tensor", 8, F.TYPE_MESSAGE, opt, ".tftest.TensorProto"),
        ],
        oneof="value",
    )
    node = message(
        "NodeDef",
        [
            ("name", 1, F.TYPE_STRING, opt, None),
            ("op", 2, F.TYPE_STRING, opt, None),
            ("input", 3, F.TYPE_STRING, rep, None),
            ("device", 4, F.TYPE_STRING, opt, None),
            ("attr", 5, F.TYPE_MESSAGE, rep, ".tftest.NodeDef.AttrEntry"),
        ],
    )
    entry = node.nested_type.add(name="AttrEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".tftest.AttrValue")
    message("GraphDef", [("node", 1, F.TYPE_MESSAGE, rep, ".tftest.NodeDef"), ("version", 3, F.TYPE_INT32, opt, None)])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = ["GraphDef", "NodeDef", "AttrValue", "ListValue", "TensorProto", "TensorShapeProto"]
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tftest.{n}")) for n in names}


# --------------------------------------------------------------------------- wire level


def test_varints_including_negative_and_64_bit():
    for value in [0, 1, 127, 128, 300, 2**31, 2**63 - 1, 2**64 - 1]:
        data = bytearray()
        v = value
        while True:
            byte = v & 0x7F
            v >>= 7
            data.append(byte | (0x80 if v else 0))
            if not v:
                break
        assert pb.read_varint(memoryview(bytes(data)), 0) == (value, len(data))
    with pytest.raises(pb.ProtobufError, match="truncated"):
        pb.read_varint(memoryview(b"\x80\x80"), 0)


def test_tf_messages_encoded_by_protobuf():
    M = tf_messages()
    t = M["TensorProto"](dtype=1, tensor_content=np.arange(6, dtype="<f4").tobytes())
    t.tensor_shape.dim.add(size=2)
    t.tensor_shape.dim.add(size=3)
    node = M["NodeDef"](name="scope/conv", op="Conv2D", input=["x:0", "^ctrl"])
    node.attr["strides"].list.i.extend([1, 2, 2, 1])
    node.attr["padding"].s = b"SAME"
    node.attr["value"].tensor.CopyFrom(t)
    node.attr["epsilon"].f = 0.001
    node.attr["is_training"].b = False  # oneof: encoded although default
    node.attr["T"].type = 1
    node.attr["neg"].i = -5
    splat = M["TensorProto"](dtype=3, int_val=[-7, 3])
    node.attr["splat"].tensor.CopyFrom(splat)
    g = M["GraphDef"](node=[node, M["NodeDef"](name="x", op="Placeholder")], version=27)

    out = pb.TF.decode(g.SerializeToString(), "GraphDef")
    assert out["version"] == 27 and [n["name"] for n in out["node"]] == ["scope/conv", "x"]
    n = out["node"][0]
    assert n["op"] == "Conv2D" and n["input"] == ["x:0", "^ctrl"]
    a = n["attr"]
    assert a["strides"]["list"]["i"].tolist() == [1, 2, 2, 1]
    assert a["padding"]["s"] == b"SAME"
    assert a["epsilon"]["f"] == pytest.approx(0.001, rel=1e-7)
    assert a["is_training"] == {"b": False}
    assert a["T"]["type"] == 1 and a["neg"]["i"] == -5
    tensor = a["value"]["tensor"]
    assert [d["size"] for d in tensor["tensor_shape"]["dim"]] == [2, 3]
    assert np.frombuffer(tensor["tensor_content"], "<f4").tolist() == list(range(6))
    assert a["splat"]["tensor"]["int_val"].tolist() == [-7, 3]
    assert out["node"][1] == {"name": "x", "op": "Placeholder"}


def test_onnx_model_encoded_by_onnx():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    init = [
        numpy_helper.from_array(w, "w"),
        helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1]),  # typed int64_data, negative value
        helper.make_tensor("slope", TensorProto.FLOAT, [3], [0.25, -0.5, 1.5]),  # typed float_data (packed)
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[2, 2], pads=[0, 0, 1, 1], group=1),
        helper.make_node("Reshape", ["y", "shape"], ["z"], name="flat"),
        helper.make_node("LeakyRelu", ["z"], ["out"], alpha=0.1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, None])], initializer=init,
    )
    model = helper.make_model(graph, producer_name="facelab-test", opset_imports=[helper.make_opsetid("", 11)])
    out = pb.ONNX.decode(model.SerializeToString(), "ModelProto")

    assert out["producer_name"] == "facelab-test" and out["opset_import"][0]["version"] == 11
    g = out["graph"]
    assert [n["op_type"] for n in g["node"]] == ["Conv", "Reshape", "LeakyRelu"]
    conv = g["node"][0]
    assert conv["name"] == "conv" and conv["input"] == ["x", "w"] and conv["output"] == ["y"]
    attrs = {a["name"]: a for a in conv["attribute"]}
    assert attrs["strides"]["ints"].tolist() == [2, 2] and attrs["pads"]["ints"].tolist() == [0, 0, 1, 1]
    assert attrs["group"]["i"] == 1
    assert g["node"][2]["attribute"][0]["f"] == pytest.approx(0.1, rel=1e-7)
    tensors = {t["name"]: t for t in g["initializer"]}
    assert tensors["w"]["dims"].tolist() == [4, 3, 3, 3] and tensors["w"]["data_type"] == 1
    assert np.array_equal(np.frombuffer(tensors["w"]["raw_data"], "<f4").reshape(w.shape), w)
    assert tensors["shape"]["int64_data"].tolist() == [1, -1]
    assert tensors["slope"]["float_data"].tolist() == [0.25, -0.5, 1.5]
    x_in = g["input"][0]
    dims = x_in["type"]["tensor_type"]["shape"]["dim"]
    assert x_in["name"] == "x" and [d["dim_value"] for d in dims] == [1, 3, 8, 8]
    assert "dim_value" not in g["output"][0]["type"]["tensor_type"]["shape"]["dim"][1]


def test_unpacked_repeated_and_unknown_fields():
    # TensorProto.float_val (5) written unpacked, twice, around an unknown
    # field 99 (varint) and an unknown length-delimited field 98.
    f32 = lambda v: np.float32(v).tobytes()  # noqa: E731
    data = bytes([5 << 3 | 5]) + f32(1.5) + bytes([0x98, 0x06, 42]) + bytes([0x92, 0x06, 2, 7, 7]) + bytes([5 << 3 | 5]) + f32(-2.0)
    out = pb.TF.decode(data, "TensorProto")
    assert list(out) == ["float_val"]
    assert out["float_val"].dtype == np.float32 and out["float_val"].tolist() == [1.5, -2.0]


def test_wrong_wire_type_and_truncation_are_errors(tmp_path):
    with pytest.raises(pb.ProtobufError, match="NodeDef.name"):
        pb.TF.decode(bytes([1 << 3 | 0, 5]), "NodeDef")  # name as a varint
    with pytest.raises(pb.ProtobufError, match="past the end"):
        pb.TF.decode(bytes([1 << 3 | 2, 10]) + b"abc", "NodeDef")
    M = tf_messages()
    good = M["GraphDef"](node=[M["NodeDef"](name="a" * 50, op="Const")]).SerializeToString()
    path = tmp_path / "cut.pb"
    path.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="cut.pb"):
        pb.read_graphdef(path)
    path.write_bytes(b"\x0f\xff\xff")  # wire type 7
    with pytest.raises(ValueError, match="cut.pb"):
        pb.read_graphdef(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="no nodes"):
        pb.read_graphdef(path)
    with pytest.raises(ValueError, match="cut.pb"):
        pb.read_onnx_model(path)
