"""ErasableMask checkpoints: atomic, self-describing, checksummed.

File layout (``<cache>/erasable_mask/<name>.ckpt``)::

    line 1   b"FACELAB-ERASABLEMASK\\n"                       magic
    line 2   JSON header + b"\\n"                             format version, facelab version,
                                                              network config, provenance,
                                                              sha256 and length of the payload
    rest     torch.save({"G": …, "R": …, "D": …}) bytes      state dicts (loaded weights_only)

Writing goes to a temporary file in the same folder and is renamed into place,
so a crash never leaves half a checkpoint.  Loading refuses — with a
:class:`CheckpointError` saying why and what to do — a file that is not an
ErasableMask checkpoint, one of another format or facelab version, a payload
whose checksum or length does not match (damaged, truncated), or weights whose
shapes do not fit the stored configuration.  A refused checkpoint is never
used.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from ... import __version__ as FACELAB_VERSION
from ... import cache
from .model import ErasableMask
from .nets import NetConfig

MAGIC = b"FACELAB-ERASABLEMASK\n"
FORMAT_VERSION = 2  # 2: NetConfig.shortcut_layers (AttGAN shortcuts 1 → 3 by default)


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: foreign, damaged, or from another version."""


def checkpoint_dir() -> Path:
    return cache.cache_dir() / "erasable_mask"


def checkpoint_path(name: str = "erasable_mask") -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"checkpoint name must be a plain file stem like 'erasable_mask', got {name!r}")
    return checkpoint_dir() / f"{name}.ckpt"


def save(model: ErasableMask, name: str = "erasable_mask", path: str | Path | None = None) -> Path:
    """Write ``model`` (weights, config, provenance) atomically; returns the path."""
    target = Path(path) if path is not None else checkpoint_path(name)
    buf = io.BytesIO()
    torch.save({"G": model.G.state_dict(), "R": model.R.state_dict(), "D": model.D.state_dict()}, buf)
    payload = buf.getvalue()
    header = {
        "format": "facelab-erasable-mask", "format_version": FORMAT_VERSION, "facelab_version": FACELAB_VERSION,
        "config": model.cfg.to_dict(), "provenance": model.provenance,
        "payload_sha256": hashlib.sha256(payload).hexdigest(), "payload_bytes": len(payload),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".ckpt")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC)
            fh.write(json.dumps(header, sort_keys=True, default=_jsonable).encode() + b"\n")
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _jsonable(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"cannot store {type(v).__name__} in a checkpoint header")


def read_header(path: str | Path) -> tuple[dict, bytes]:
    """The header and payload of a checkpoint file, checked (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no ErasableMask checkpoint at {path}; train one with "
            "`python -m facelab.methods.erasable_mask` (teaching scale, ≤ 20 min on 2 cores)")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a facelab ErasableMask checkpoint (wrong magic bytes); "
                              "refusing to load it")
    rest = data[len(MAGIC):]
    nl = rest.find(b"\n")
    try:
        header = json.loads(rest[:nl].decode()) if nl >= 0 else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the checkpoint header is damaged; delete the file and train again")
    if header.get("format") != "facelab-erasable-mask" or header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {header.get('format')!r} v{header.get('format_version')}, this facelab "
            f"reads facelab-erasable-mask v{FORMAT_VERSION}; train again with this version")
    if header.get("facelab_version") != FACELAB_VERSION:
        raise CheckpointError(
            f"{path} was written by facelab {header.get('facelab_version')}, this is facelab {FACELAB_VERSION}; "
            "networks may differ between versions, so it is not loaded: train again "
            "(`python -m facelab.methods.erasable_mask`)")
    payload = rest[nl + 1:]
    if len(payload) != header.get("payload_bytes") or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(
            f"{path} is damaged: its weights do not match the recorded sha256 "
            f"({len(payload)} bytes, expected {header.get('payload_bytes')}); delete it and train again")
    return header, payload


def load(name_or_path: str | Path = "erasable_mask", device: torch.device | str | None = None) -> ErasableMask:
    """An :class:`ErasableMask` from the facelab cache (by name) or a path,
    in eval mode with frozen weights.  Raises :class:`CheckpointError` for a
    foreign, damaged or other-version checkpoint and ``FileNotFoundError``
    when there is none."""
    p = Path(name_or_path)
    path = p if (p.suffix == ".ckpt" or p.parent != Path(".")) else checkpoint_path(str(name_or_path))
    header, payload = read_header(path)
    try:
        cfg = NetConfig.from_dict(header["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: its network configuration is not valid here ({e}); train again") from e
    model = ErasableMask(cfg)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        for part in ("G", "R", "D"):
            getattr(model, part).load_state_dict(state[part])
    except (RuntimeError, KeyError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: the stored weights do not fit the stored configuration ({e}); "
                              "train again") from e
    model.provenance = header.get("provenance", {})
    model.eval().requires_grad_(False)
    return model.to(device) if device is not None else model


def exists(name: str = "erasable_mask") -> bool:
    return checkpoint_path(name).exists()
