"""Black-box face reconstruction (PMT's Level-1 attacker, Eq. 1): "RecFace",
a small U-Net trained on (E_c(x), x) pairs to map shallow features back to faces.

The attacker owns an auxiliary face set, queries the shallow model for its
features and trains R to minimise

    L_R(Z, X) = Σ_i ‖x_i − R(z_i)‖₂,   z_i = E_c(x_i)                       (Eq. 1)

The paper modifies a U-Net "following [17]" without giving its layers.
facelab's RecFace is sized for a CPU lesson (about 30 k parameters at the
default width 16): a two-level U-Net at the feature map's resolution, then
bilinear ×2 upsampling stages (one conv each, halving the channels) until the
face size, a 1×1 conv to RGB and a sigmoid.  Training data here are the offline set's faces plus extra frames
sampled from its three videos (:func:`video_frames`), each batch randomly
flipped, shifted and brightened (the set is tiny).  Eq. 1's per-image L2 norm
is averaged over the batch.

:func:`train_recface` is a generator (one Step per iteration: the batch's
reconstructions as preview images, the loss, epoch and learning rate);
:func:`load_or_train` caches the trained weights in the facelab cache with
their provenance (command, data, seed, facelab version, final loss), written
atomically, so a notebook reuses what the benchmark trained.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import cache, validate
from ..steps import Step


# -- the network ----------------------------------------------------------------------


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class RecFace(nn.Module):
    """U-Net from shallow features (N, ``in_channels``, h, w) to faces (N, 3, ``size``, ``size``) in [0,1]."""

    def __init__(self, in_channels: int, size: int = 112, width: int = 16):
        super().__init__()
        self.in_channels, self.size, self.width = in_channels, size, width
        self.enc1 = _block(in_channels, width)
        self.enc2 = _block(width, 2 * width)
        self.dec1 = _block(3 * width, width)
        self.ups = nn.ModuleList()
        self.head = nn.Conv2d(width, 3, 1)

    def _upsampler(self, h: int) -> None:
        """×2 upsampling stages until the face size, halving the channels each time (at least 8)."""
        n = max(0, math.ceil(math.log2(self.size / h))) if h < self.size else 0
        c = self.width
        for _ in range(n):
            self.ups.append(_up(c, max(8, c // 2)))
            c = max(8, c // 2)
        self.head = nn.Conv2d(c, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(z)
        e2 = self.enc2(F.avg_pool2d(e1, 2, ceil_mode=True))
        up = F.interpolate(e2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        d = self.dec1(torch.cat([up, e1], 1))
        for block in self.ups:
            d = block(F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False))
        if d.shape[-1] != self.size:
            d = F.interpolate(d, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(d))


def build_recface(shallow, size: int | None = None, width: int = 16) -> RecFace:
    """A fresh RecFace shaped for ``shallow``'s output (channels, resolution) at face ``size``."""
    size = shallow.model.input_size if size is None else size
    with torch.no_grad():
        c, h = shallow(torch.full((1, 3, size, size), 0.5)).shape[1:3]
    net = RecFace(int(c), size, width)
    net._upsampler(int(h))
    return net


# -- training data --------------------------------------------------------------------


def video_frames(per_video: int = 24, size: int = 112, log=print) -> torch.Tensor:
    """Aligned faces from ``per_video`` extra frames of each video of the offline
    set (evenly spaced, skipping the manifest's own timestamps by ≥ 1 s), cached
    as uint8 in ``<cache>/faces/recface-frames-<per_video>-<size>.npz``.
    Frames where MTCNN finds no face are skipped."""
    from ..faces.io import NoFaceError, load_image
    from ..faces.offline import manifest, read_video_frame
    from ..faces.packages import package_by_key

    def build() -> dict:
        import av

        crops = []
        videos: dict[str, tuple[dict, list[float]]] = {}
        for e in manifest()["faces"]:
            if e.get("time") is not None:
                videos.setdefault(e["dest"], (e, []))[1].append(float(e["time"]))
        for dest, (entry, used) in videos.items():
            path = cache.require(package_by_key(entry["package"]), dest)
            with av.open(str(path)) as c:
                duration = float(c.duration or 0) / 1e6
            times = [t for t in np.linspace(0.5, max(duration - 0.5, 0.6), per_video + len(used))
                     if all(abs(t - u) >= 1.0 for u in used)][:per_video]
            log(f"RecFace data: {len(times)} frames of {dest}")
            for t in times:
                try:
                    face = load_image(read_video_frame(path, float(t)), size, max_faces=1)
                except NoFaceError:
                    continue
                crops.append((face.crops[0].clamp(0, 1) * 255).round().byte().numpy())
        return {"crops": np.stack(crops)}

    path = cache.cache_dir() / "faces" / f"recface-frames-{per_video}-{size}.npz"
    data = cache.load_or_build_npz(path, build)
    return torch.from_numpy(data["crops"]).float() / 255


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, shift (±4 px) and brightness (×0.8–1.2) per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    shifts = torch.randint(-4, 5, (n, 2), generator=gen)
    x = torch.stack([torch.roll(x[k], tuple(int(s) for s in shifts[k]), dims=(1, 2)) for k in range(n)])
    bright = 0.8 + 0.4 * torch.rand(n, generator=gen)
    return (x * bright.view(-1, 1, 1, 1).to(x)).clamp(0, 1)


# -- training ----------------------------------------------------------------------------


def train_recface(
    shallow,
    faces: torch.Tensor,
    *,
    iterations: int = 600,
    batch_size: int = 8,
    lr: float = 2e-3,
    width: int = 16,
    preview: int = 4,
    net: RecFace | None = None,
    seed: int = 0,
) -> Iterator[Step]:
    """Train RecFace on (E_c(x), x) pairs from ``faces`` (N, 3, S, S) (Eq. 1).

    Adam with a cosine-decayed learning rate from ``lr``; each iteration draws
    a seeded batch of ``batch_size`` faces and augments it.  Yields one Step per
    iteration (i = 1 …; i = 0 is the untrained network on the first batch):
    ``x`` the first ``preview`` reconstructions of the batch, ``losses``
    ``"loss"`` Eq. 1 (mean per-image L2 norm), ``state`` ``"epoch"``
    (faces seen / N), ``"lr"`` and ``"recface"`` (the network being trained;
    the last Step's is the trained one).
    """
    faces = validate.images(faces, "faces")
    iterations = validate.integer(iterations, "iterations", minimum=0)
    batch_size = validate.integer(batch_size, "batch_size")
    lr = validate.positive(lr, "lr")
    gen = torch.Generator(device="cpu").manual_seed(validate.seed(seed))
    torch.manual_seed(validate.seed(seed))  # the network's initial weights
    net = build_recface(shallow, faces.shape[-1], width) if net is None else net
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = faces.shape[0]
    for i in range(iterations + 1):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        xb = _augment(faces[idx], gen)
        with torch.no_grad():
            z = shallow(xb)
        out = net(z)
        loss = (out - xb).flatten(1).norm(dim=1).mean()
        now = lr * 0.5 * (1 + math.cos(math.pi * i / max(iterations, 1)))
        if i > 0:
            for group in opt.param_groups:
                group["lr"] = now
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if i == iterations:
            net.eval()
        yield Step(i, out[:preview].detach().clamp(0, 1), {"loss": loss.detach()},
                   {"epoch": i * len(idx) / n, "lr": now, "recface": net})


# -- the cached checkpoint -------------------------------------------------------------


def checkpoint_path(model_name: str, n_layers: int, config: dict) -> Path:
    """Where the checkpoint for this shallow model and training configuration lives."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return cache.cache_dir() / "recface" / f"recface-{model_name}-L{n_layers}-{digest}.pt"


def save_checkpoint(net: RecFace, path: Path, provenance: dict) -> Path:
    """Write weights + shape + provenance atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": net.state_dict(), "in_channels": net.in_channels, "size": net.size,
               "width": net.width, "n_ups": len(net.ups), "provenance": provenance}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: Path | str) -> tuple[RecFace, dict]:
    """A trained RecFace (eval mode) and its provenance from ``path``."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    net = RecFace(payload["in_channels"], payload["size"], payload["width"])
    net._upsampler(payload["size"] // 2 ** payload["n_ups"] + (payload["size"] % 2 ** payload["n_ups"] > 0))
    net.load_state_dict(payload["state_dict"])
    net.eval().requires_grad_(False)
    return net, payload["provenance"]


def load_or_train(shallow, faces: torch.Tensor, *, data: str, iterations: int = 600, batch_size: int = 8,
                  lr: float = 2e-3, width: int = 16, seed: int = 0, refresh: bool = False,
                  command: str | None = None, progress: bool = True) -> tuple[RecFace, dict]:
    """The RecFace for ``shallow`` trained on ``faces`` with this configuration:
    from the cache when it was trained before, else trained now (a tqdm bar
    when ``progress``) and cached.  ``data`` describes ``faces`` for the
    provenance (and, with a digest of the pixels, keys the cache).
    Returns (network, provenance)."""
    from .. import __version__

    config = {"model": shallow.model.name, "n_layers": shallow.n_layers, "iterations": iterations,
              "batch_size": batch_size, "lr": lr, "width": width, "seed": seed, "data": data,
              "faces": hashlib.sha256(faces.numpy().tobytes()).hexdigest()[:16], "n_faces": int(faces.shape[0])}
    path = checkpoint_path(shallow.model.name, shallow.n_layers, config)
    if path.exists() and not refresh:
        try:
            return load_checkpoint(path)
        except Exception:  # a damaged checkpoint is retrained
            pass
    t0 = time.perf_counter()
    gen = train_recface(shallow, faces, iterations=iterations, batch_size=batch_size, lr=lr, width=width, seed=seed)
    if progress:
        from tqdm.auto import tqdm

        gen = tqdm(gen, total=iterations + 1, desc=f"RecFace for {shallow.name}", leave=False)
    losses = []
    for step in gen:
        losses.append(step.losses["loss"])
        net = step.state["recface"]
    net.requires_grad_(False)
    provenance = {**config, "command": command or " ".join(sys.argv), "facelab_version": __version__,
                  "final_loss": float(torch.stack(losses[-20:]).mean()), "train_seconds": time.perf_counter() - t0,
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save_checkpoint(net, path, provenance)
    return net, provenance
