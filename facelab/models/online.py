"""facenet-pytorch's pretrained InceptionResnetV1, where the internet exists.

Its weights live on GitHub releases, which offline machines (CI, many
classrooms) cannot reach: loading then raises :class:`NeedsInternetError`
with a clear message and nothing else in facelab is affected.  The
state dict is read with ``torch.load(weights_only=True)`` (facenet-pytorch
itself unpickles it without that guard).
"""
from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import torch

from ..cache import NeedsInternetError, cache_dir
from .specs import ModelSpec, _scale

_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
ONLINE = {
    "facenet-pytorch-vggface2": ("vggface2", "20180402-114759-vggface2.pt"),
    "facenet-pytorch-casia": ("casia-webface", "20180408-102900-casia-webface.pt"),
}


def _download(filename: str, timeout: float = 20.0) -> Path:
    dest = cache_dir() / "online" / filename
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(_RELEASE + filename, str(dest), progress=False)
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        raise NeedsInternetError(
            f"{filename} comes from GitHub releases and needs the internet (Colab, Binder, a laptop); "
            f"this machine could not download it ({e.__class__.__name__}: {e}). The offline pool "
            f"(facelab.models.available()) works without it."
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return dest


def load_online(name: str) -> tuple[ModelSpec, torch.nn.Module]:
    try:
        from facenet_pytorch import InceptionResnetV1
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "facenet-pytorch is not installed; install it with `pip install --no-deps facenet-pytorch`"
        ) from e
    dataset, filename = ONLINE[name]
    path = _download(filename)
    net = InceptionResnetV1(pretrained=None, classify=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # the released dict also holds the training classifier ("logits.*"), unused here
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    spec = ModelSpec(
        name, 160, 512, lambda: net, _scale(1 / 128, 127.5),
        "(RGB 0..255 − 127.5) / 128 (facenet-pytorch's fixed_image_standardization)",
        f"facenet-pytorch InceptionResnetV1 pretrained on {dataset}", "MIT", needs_internet=True,
    )
    return spec, net
