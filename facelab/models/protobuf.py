"""A small reader for the protobuf wire format, and the two schemas facelab
needs: TensorFlow's ``GraphDef`` and ONNX's ``ModelProto``.

Written here so that loading the FaceNet ``.pb`` and the ONNX model needs no
``tensorflow``, ``onnx`` or ``protobuf`` package at run time.

A message decodes to a plain ``dict`` holding only the fields present in the
bytes (use ``.get`` with the proto default).  Repeated message/string fields
become lists, repeated numeric fields 1-D numpy arrays (packed or not), map
fields dicts.  Unknown fields are skipped, as protobuf itself does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

# wire types
VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class ProtobufError(ValueError):
    """The bytes are not a valid encoding of the expected message."""


# --------------------------------------------------------------------------- wire level


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return (value, next position)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf: memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, raw value) for each field in ``buf[start:end]``.

    Raw values: ``int`` for varints, ``memoryview`` of 4 or 8 bytes for fixed
    fields, ``memoryview`` of the payload for length-delimited fields.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == LENGTH:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if pos > end:
            raise ProtobufError(f"field {number} runs past the end of its message")
        yield number, wire, value


# --------------------------------------------------------------------------- schemas

_VARINT_KINDS = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "enum"}
_FIXED_KINDS = {  # kind -> (wire type, numpy dtype)
    "float": (FIXED32, np.dtype("<f4")),
    "fixed32": (FIXED32, np.dtype("<u4")),
    "sfixed32": (FIXED32, np.dtype("<i4")),
    "double": (FIXED64, np.dtype("<f8")),
    "fixed64": (FIXED64, np.dtype("<u8")),
    "sfixed64": (FIXED64, np.dtype("<i8")),
}
_VARINT_DTYPES = {"uint64": np.uint64, "bool": np.bool_}  # everything else: int64


@dataclass
class Field:
    name: str
    kind: str  # a scalar kind above, "string", "bytes", or a message name
    repeated: bool = False
    map_value: str | None = None  # for map<string, X>: kind of X (the key is field 1, value field 2)


@dataclass
class Schema:
    """A message type: field number -> :class:`Field`, in a named registry so
    that schemas can refer to each other (and to themselves)."""

    name: str
    fields: dict[int, Field] = field(default_factory=dict)


def _signed(value: int, kind: str) -> int:
    if kind in ("sint32", "sint64"):
        return (value >> 1) ^ -(value & 1)
    if kind in ("int32", "int64", "enum") and value >= 1 << 63:
        return value - (1 << 64)
    if kind == "bool":
        return bool(value)
    return value


def _numeric_dtype(kind: str) -> np.dtype:
    if kind in _FIXED_KINDS:
        return _FIXED_KINDS[kind][1].newbyteorder("=")
    return np.dtype(_VARINT_DTYPES.get(kind, np.int64))


def _decode_packed(payload: memoryview, kind: str) -> np.ndarray:
    if kind in _FIXED_KINDS:
        dtype = _FIXED_KINDS[kind][1]
        if len(payload) % dtype.itemsize:
            raise ProtobufError(f"packed {kind} field has {len(payload)} bytes")
        return np.frombuffer(payload, dtype=dtype).astype(_numeric_dtype(kind))
    values = []
    pos = 0
    while pos < len(payload):
        v, pos = read_varint(payload, pos)
        values.append(_signed(v, kind))
    return np.array(values, dtype=_numeric_dtype(kind))


class Decoder:
    """Decodes messages of the schemas in ``registry``."""

    def __init__(self, registry: dict[str, Schema]):
        self.registry = registry

    def _scalar(self, kind: str, wire: int, value, fname: str):
        if kind in _VARINT_KINDS:
            if wire != VARINT:
                raise ProtobufError(f"field {fname}: expected a varint, got wire type {wire}")
            return _signed(value, kind)
        if kind in _FIXED_KINDS:
            want, dtype = _FIXED_KINDS[kind]
            if wire != want:
                raise ProtobufError(f"field {fname}: expected wire type {want}, got {wire}")
            return np.frombuffer(value, dtype=dtype)[0].item()
        if wire != LENGTH:
            raise ProtobufError(f"field {fname}: expected a length-delimited value, got wire type {wire}")
        if kind == "string":
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtobufError(f"field {fname}: invalid UTF-8") from e
        if kind == "bytes":
            return bytes(value)
        return self.decode(value, kind)

    def decode(self, buf, schema_name: str) -> dict:
        """Decode one message of type ``schema_name`` from ``buf``."""
        schema = self.registry[schema_name]
        buf = memoryview(buf)
        out: dict = {}
        numeric_chunks: dict[str, list] = {}
        for number, wire, value in iter_fields(buf):
            f = schema.fields.get(number)
            if f is None:
                continue
            fname = f"{schema.name}.{f.name}"
            if f.map_value is not None:
                entry = self._map_entry(value, wire, f, fname)
                out.setdefault(f.name, {}).update([entry])
            elif f.repeated and (f.kind in _VARINT_KINDS or f.kind in _FIXED_KINDS):
                chunks = numeric_chunks.setdefault(f.name, [])
                if wire == LENGTH:
                    chunks.append(_decode_packed(value, f.kind))
                else:
                    chunks.append(np.array([self._scalar(f.kind, wire, value, fname)], dtype=_numeric_dtype(f.kind)))
            elif f.repeated:
                out.setdefault(f.name, []).append(self._scalar(f.kind, wire, value, fname))
            else:
                out[f.name] = self._scalar(f.kind, wire, value, fname)  # last one wins
        for name, chunks in numeric_chunks.items():
            out[name] = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        return out

    def _map_entry(self, value, wire: int, f: Field, fname: str) -> tuple:
        if wire != LENGTH:
            raise ProtobufError(f"map field {fname}: expected a length-delimited entry")
        key, val = "", None
        for number, w, v in iter_fields(value):
            if number == 1:
                key = self._scalar(f.kind, w, v, fname + ".key")
            elif number == 2:
                val = self._scalar(f.map_value, w, v, fname + ".value")
        if val is None:
            val = {} if f.map_value in self.registry else None
        return key, val


def _registry(spec: dict[str, dict[int, tuple]]) -> dict[str, Schema]:
    reg = {}
    for name, fields in spec.items():
        schema = Schema(name)
        for number, args in fields.items():
            fname, kind, *rest = args
            repeated = "repeated" in rest
            map_value = next((r[4:] for r in rest if r.startswith("map:")), None)
            schema.fields[number] = Field(fname, kind, repeated, map_value)
        reg[name] = schema
    return reg


# TensorFlow core/framework/{graph,node_def,attr_value,tensor,tensor_shape}.proto
TF_SCHEMAS = _registry(
    {
        "GraphDef": {1: ("node", "NodeDef", "repeated"), 3: ("version", "int32"), 4: ("versions", "VersionDef")},
        "VersionDef": {1: ("producer", "int32"), 2: ("min_consumer", "int32")},
        "NodeDef": {
            1: ("name", "string"),
            2: ("op", "string"),
            3: ("input", "string", "repeated"),
            4: ("device", "string"),
            5: ("attr", "string", "map:AttrValue"),
        },
        "AttrValue": {
            1: ("list", "AttrList"),
            2: ("s", "bytes"),
            3: ("i", "int64"),
            4: ("f", "float"),
            5: ("b", "bool"),
            6: ("type", "enum"),
            7: ("shape", "TensorShapeProto"),
            8: ("tensor", "TensorProto"),
            9: ("placeholder", "string"),
        },
        "AttrList": {
            2: ("s", "bytes", "repeated"),
            3: ("i", "int64", "repeated"),
            4: ("f", "float", "repeated"),
            5: ("b", "bool", "repeated"),
            6: ("type", "enum", "repeated"),
            7: ("shape", "TensorShapeProto", "repeated"),
            8: ("tensor", "TensorProto", "repeated"),
        },
        "TensorShapeProto": {2: ("dim", "TensorShapeDim", "repeated"), 3: ("unknown_rank", "bool")},
        "TensorShapeDim": {1: ("size", "int64"), 2: ("name", "string")},
        "TensorProto": {
            1: ("dtype", "enum"),
            2: ("tensor_shape", "TensorShapeProto"),
            3: ("version_number", "int32"),
            4: ("tensor_content", "bytes"),
            5: ("float_val", "float", "repeated"),
            6: ("double_val", "double", "repeated"),
            7: ("int_val", "int32", "repeated"),
            8: ("string_val", "bytes", "repeated"),
            10: ("int64_val", "int64", "repeated"),
            11: ("bool_val", "bool", "repeated"),
            13: ("half_val", "int32", "repeated"),
            16: ("uint32_val", "uint32", "repeated"),
            17: ("uint64_val", "uint64", "repeated"),
        },
    }
)

# onnx/onnx.proto (IR version 3..10)
ONNX_SCHEMAS = _registry(
    {
        "ModelProto": {
            1: ("ir_version", "int64"),
            2: ("producer_name", "string"),
            3: ("producer_version", "string"),
            4: ("domain", "string"),
            5: ("model_version", "int64"),
            6: ("doc_string", "string"),
            7: ("graph", "GraphProto"),
            8: ("opset_import", "OperatorSetIdProto", "repeated"),
        },
        "OperatorSetIdProto": {1: ("domain", "string"), 2: ("version", "int64")},
        "GraphProto": {
            1: ("node", "NodeProto", "repeated"),
            2: ("name", "string"),
            5: ("initializer", "TensorProto", "repeated"),
            10: ("doc_string", "string"),
            11: ("input", "ValueInfoProto", "repeated"),
            12: ("output", "ValueInfoProto", "repeated"),
            13: ("value_info", "ValueInfoProto", "repeated"),
        },
        "NodeProto": {
            1: ("input", "string", "repeated"),
            2: ("output", "string", "repeated"),
            3: ("name", "string"),
            4: ("op_type", "string"),
            5: ("attribute", "AttributeProto", "repeated"),
            6: ("doc_string", "string"),
            7: ("domain", "string"),
        },
        "AttributeProto": {
            1: ("name", "string"),
            2: ("f", "float"),
            3: ("i", "int64"),
            4: ("s", "bytes"),
            5: ("t", "TensorProto"),
            6: ("g", "GraphProto"),
            7: ("floats", "float", "repeated"),
            8: ("ints", "int64", "repeated"),
            9: ("strings", "bytes", "repeated"),
            10: ("tensors", "TensorProto", "repeated"),
            11: ("graphs", "GraphProto", "repeated"),
            20: ("type", "enum"),
        },
        "TensorProto": {
            1: ("dims", "int64", "repeated"),
            2: ("data_type", "int32"),
            4: ("float_data", "float", "repeated"),
            5: ("int32_data", "int32", "repeated"),
            6: ("string_data", "bytes", "repeated"),
            7: ("int64_data", "int64", "repeated"),
            8: ("name", "string"),
            9: ("raw_data", "bytes"),
            10: ("double_data", "double", "repeated"),
            11: ("uint64_data", "uint64", "repeated"),
            14: ("data_location", "enum"),
        },
        "ValueInfoProto": {1: ("name", "string"), 2: ("type", "TypeProto"), 3: ("doc_string", "string")},
        "TypeProto": {1: ("tensor_type", "TypeProtoTensor")},
        "TypeProtoTensor": {1: ("elem_type", "int32"), 2: ("shape", "OnnxShape")},
        "OnnxShape": {1: ("dim", "OnnxDim", "repeated")},
        "OnnxDim": {1: ("dim_value", "int64"), 2: ("dim_param", "string")},
    }
)

TF = Decoder(TF_SCHEMAS)
ONNX = Decoder(ONNX_SCHEMAS)


def _read_file(path: Path | str, decoder: Decoder, schema: str, what: str) -> dict:
    path = Path(path)
    data = path.read_bytes()
    try:
        msg = decoder.decode(data, schema)
    except ProtobufError as e:
        raise ProtobufError(f"{path} is not a valid {what} (truncated or corrupt protobuf: {e})") from None
    return msg


def read_graphdef(path: Path | str) -> dict:
    """A TensorFlow frozen ``GraphDef`` (``.pb``) as nested dicts."""
    msg = _read_file(path, TF, "GraphDef", "TensorFlow GraphDef")
    if not msg.get("node"):
        raise ProtobufError(f"{path} decodes as a GraphDef with no nodes; is it really a frozen TensorFlow graph?")
    return msg


def read_onnx_model(path: Path | str) -> dict:
    """An ONNX ``ModelProto`` (``.onnx``) as nested dicts."""
    msg = _read_file(path, ONNX, "ModelProto", "ONNX model")
    if "graph" not in msg:
        raise ProtobufError(f"{path} decodes as an ONNX model without a graph; is it really an .onnx file?")
    return msg
