"""Reading tfjs weight manifests (the ``weightsManifest`` of ``model.json`` or a
face-api ``*-weights_manifest.json``) into named float32/int32 tensors.

Quantised weights are dequantised the way tfjs does it, so values match the
original runtime bit for bit (docs/models.md, pitfall 3): uint8/uint16 as
``q * scale + min`` computed in float64 then cast to float32; float16 is
widened to float32.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


class WeightsFormatError(ValueError):
    """The manifest and the binary shards disagree."""


def read_weights(manifest: list[dict], folder: Path | str) -> dict[str, torch.Tensor]:
    """Decode every weight listed in ``manifest`` (a list of weight groups,
    each with ``paths`` to binary shards relative to ``folder``)."""
    folder = Path(folder)
    out: dict[str, torch.Tensor] = {}
    for group in manifest:
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(s) for s in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant:
                qtype = np.dtype(_QUANT[quant["dtype"]])
                raw = np.frombuffer(blob, dtype=qtype, count=count, offset=offset)
                offset += count * qtype.itemsize
                if quant["dtype"] == "float16":
                    values = raw.astype(np.float32)
                else:
                    values = (raw.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
            else:
                dtype = np.dtype(_DTYPES.get(spec["dtype"], np.float32))
                values = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).copy()
                offset += count * dtype.itemsize
            out[spec["name"]] = torch.from_numpy(np.ascontiguousarray(values).reshape(shape))
        if offset != len(blob):
            raise WeightsFormatError(
                f"weights group {group['paths']} has {len(blob)} bytes but its manifest describes {offset}"
            )
    return out


def read_weights_manifest_file(path: Path | str) -> dict[str, torch.Tensor]:
    """Weights of a stand-alone ``*-weights_manifest.json`` (face-api style)."""
    path = Path(path)
    return read_weights(json.loads(path.read_text()), path.parent)
