"""ErasableMask's networks, AttGAN-style and sized for 64–112 px on a CPU.

* :class:`Encoder` — ``L`` conv 4×4 / stride 2 blocks; returns every layer's
  output (the fusions of Eq. 6 and Eq. 13 act layer by layer).
* :class:`Decoder` — tiles the attribute vector onto the bottleneck, ``L``
  transposed convs, AttGAN's shortcuts (encoder features concatenated after
  the deconvs, ``shortcut_layers`` of them from the bottleneck up) with a
  second attribute injection after the first.
* :class:`Generator` — encoder ``E``, perturbation encoder ``P`` (Eq. 6),
  clean-domain branch ``C`` (Eq. 13) and decoder ``Dec`` (Eq. 7).
* :class:`Restorer` — the same encoder/decoder structure, initialised from
  ``E`` and ``Dec``, reading only the protected face.
* :class:`Discriminator` — a conv trunk with two heads: a critic (WGAN-GP)
  and the attribute classifier (Eq. 3–4).

Choices made where the paper and AttGAN leave room (docs/erasable_mask.md):

* **GroupNorm instead of BatchNorm** in encoder and decoder: batches here are
  8 faces of a few people, batch statistics are noisy, and a frozen network
  (stage 2, 3) would keep updating BatchNorm's running statistics.  GroupNorm
  has no running state, so train and eval modes compute the same function.
  The discriminator uses InstanceNorm, as AttGAN does for its WGAN-GP critic.
* **Images in, images out on [0,1].**  The encoder maps x to 2x−1 itself and
  the decoder returns (tanh + 1)/2, so no caller handles AttGAN's [−1,1].
* **Attributes as ±1.**  A 0/1 label row is fed to the decoder as 2b−1
  (in-between values interpolate, which the notebook's slider uses).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

DEFAULT_ATTRIBUTES = ("male", "young", "smiling")


@dataclass(frozen=True)
class NetConfig:
    """Shapes of every network; stored in checkpoints and checked on load.

    ``size`` image side (a multiple of 2^L); ``channels`` the encoder's
    widths, one per layer (L = len(channels)); ``shortcut_layers`` AttGAN's
    number of encoder→decoder shortcuts (1 … L−1, counted from the
    bottleneck up; None = L − 1); ``attributes`` the names of the n attribute bits;
    ``beta`` β of Eq. (6), ``gamma`` γ of Eq. (13); ``disc_channels`` the
    discriminator trunk's widths.

    **choice — shortcut_layers = L − 1 (3 at both named scales), where
    AttGAN's 128-px default is 1.**  With one shortcut, a 64-px editor
    trained for minutes on 65 faces loses the identity by itself: most
    recognition models stop matching its attribute-edited faces, so the
    attack's success would measure the editor's blur, not the perturbation
    (the benchmark's editor ablation shows the match rates of both).  AttGAN
    reports the same trade (more shortcuts: sharper reconstruction, weaker
    edits); here the identity is the point of the lesson.
    """

    size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    shortcut_layers: int | None = None
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    beta: float = 0.5
    gamma: float = 0.3
    disc_channels: tuple[int, ...] = (32, 64, 128, 256)
    disc_hidden: int = 256

    def __post_init__(self) -> None:
        layers = len(self.channels)
        if layers < 2:
            raise ValueError(f"channels needs at least 2 layers, got {self.channels}")
        if self.size % (2 ** layers) or self.size < 2 ** (layers + 1):
            raise ValueError(f"size {self.size} must be a multiple of 2^{layers} = {2 ** layers} "
                             f"(one halving per encoder layer) and at least {2 ** (layers + 1)}")
        if self.shortcut_layers is None:
            object.__setattr__(self, "shortcut_layers", layers - 1)
        if not isinstance(self.shortcut_layers, int) or not 1 <= self.shortcut_layers <= layers - 1:
            raise ValueError(f"shortcut_layers must be in 1 … {layers - 1} (L − 1), got {self.shortcut_layers}")
        if len(self.disc_channels) < 1 or self.size % (2 ** len(self.disc_channels)):
            raise ValueError(f"size {self.size} must be a multiple of 2^len(disc_channels)")
        if not self.attributes:
            raise ValueError("attributes must name at least one attribute")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta (β, Eq. 6) must be in [0, 1], got {self.beta}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma (γ, Eq. 13) must be in [0, 1), got {self.gamma}")

    @property
    def n_attrs(self) -> int:
        return len(self.attributes)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown network settings {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _groups(c: int) -> int:
    for g in (8, 4, 2):
        if c % g == 0:
            return g
    return 1


def tile(b: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Attribute rows (N, n) as constant feature maps (N, n, h, w)."""
    return b[:, :, None, None].expand(-1, -1, h, w)


class Encoder(nn.Module):
    """``L`` blocks conv 4×4 / s2 → GroupNorm → LeakyReLU(0.2); ``forward``
    returns the list of every block's output (``layers`` runs one block)."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        blocks, c_in = [], 3
        for c in channels:
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 4, 2, 1, bias=False), nn.GroupNorm(_groups(c), c),
                                        nn.LeakyReLU(0.2)))
            c_in = c
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x01: torch.Tensor) -> list[torch.Tensor]:
        h, out = x01 * 2 - 1, []
        for block in self.blocks:
            h = block(h)
            out.append(h)
        return out


class Decoder(nn.Module):
    """AttGAN's decoder: [z ; tile(b)] → L transposed convs; after deconv j
    (j < ``shortcut_layers``) the encoder's feature of the same size is
    concatenated (a shortcut), and after the first also tile(b) (AttGAN's
    one extra attribute injection)."""

    def __init__(self, channels: tuple[int, ...], n_attrs: int, shortcut_layers: int = 1):
        super().__init__()
        widths = list(reversed(channels))  # bottleneck first
        self.shortcut_layers = shortcut_layers
        blocks = []
        c_in = widths[0] + n_attrs
        for j in range(len(widths)):
            last = j == len(widths) - 1
            c_out = 3 if last else widths[j + 1]
            deconv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last)
            blocks.append(deconv if last else nn.Sequential(deconv, nn.GroupNorm(_groups(c_out), c_out), nn.ReLU()))
            c_in = c_out
            if j < shortcut_layers:
                c_in += widths[j + 1]
            if j == 0:
                c_in += n_attrs
        self.blocks = nn.ModuleList(blocks)

    def forward(self, feats: list[torch.Tensor], b: torch.Tensor) -> torch.Tensor:
        """``feats`` the encoder's layer outputs, ``b`` attributes as ±1 (N, n)."""
        z = feats[-1]
        h = torch.cat([z, tile(b, *z.shape[-2:])], 1)
        for j, block in enumerate(self.blocks):
            h = block(h)
            extra = [feats[-2 - j]] if j < self.shortcut_layers else []
            if j == 0:
                extra.append(tile(b, *h.shape[-2:]))
            if extra:
                h = torch.cat([h, *extra], 1)
        return (torch.tanh(h) + 1) / 2


def as_pm1(b01: torch.Tensor) -> torch.Tensor:
    """0/1 attribute rows → ±1 (AttGAN's decoder input)."""
    return b01 * 2 - 1


class Generator(nn.Module):
    """G = (E, P, C, Dec).

    ``edit(x, b)`` is AttGAN: Dec(E(x), b) — the attribute-edited face x_b.
    ``protect(x, b)`` adds the perturbation encoder and the clean branch: with
    e_0 = p_0 = c_0 = x (the clean face),

        p_i = P_i(p_{i−1}),   c_i = C_i(c_{i−1})
        e_i = (1 − γ)·[(1 − β)·E_i(e_{i−1}) + β·p_i] + γ·c_i          (Eq. 6, Eq. 13)
        x_p = Dec(e_1 … e_L, b)                                        (Eq. 7)

    P and C start as copies of E (:meth:`start_protection`), so at the start
    of stage 2 ``protect`` equals ``edit`` and the perturbation grows from
    zero as P learns.  The convex blends are facelab's reading of the lost
    Eq. 6 / Eq. 13: a plain sum h + β·p would double every activation at the
    moment P is created from E and break the stage-1 decoder.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.E = Encoder(cfg.channels)
        self.P = Encoder(cfg.channels)
        self.C = Encoder(cfg.channels)
        self.Dec = Decoder(cfg.channels, cfg.n_attrs, cfg.shortcut_layers)

    def start_protection(self) -> None:
        """Stage 2 begins: P and C become copies of the trained E."""
        self.P.load_state_dict(self.E.state_dict())
        self.C.load_state_dict(self.E.state_dict())

    def edit(self, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.Dec(self.E(x), as_pm1(b))

    def encode_protected(self, x: torch.Tensor, p_feats: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The fused latent e_1 … e_L of Eq. 6 / Eq. 13.  ``p_feats`` replaces
        P(x) (the meta step passes the features of P at fast weights)."""
        beta, gamma = self.cfg.beta, self.cfg.gamma
        p_feats = self.P(x) if p_feats is None else p_feats
        c_feats = self.C(x) if gamma > 0 else p_feats
        e, out = x * 2 - 1, []
        for block, p, c in zip(self.E.blocks, p_feats, c_feats):
            e = (1 - beta) * block(e) + beta * p
            if gamma > 0:
                e = (1 - gamma) * e + gamma * c
            out.append(e)
        return out

    def protect(self, x: torch.Tensor, b: torch.Tensor, p_feats: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.Dec(self.encode_protected(x, p_feats), as_pm1(b))


class Restorer(nn.Module):
    """R: the generator's encoder/decoder structure, reading the (possibly
    JPEG-compressed, noised, resized) protected face.  Its decoder's attribute
    input is the neutral row 0: the trusted authority holds only the protected
    photo, so erasing needs nothing else (facelab's choice; the paper does not
    say what label R sees)."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        self.E = Encoder(cfg.channels)
        self.Dec = Decoder(cfg.channels, cfg.n_attrs, cfg.shortcut_layers)

    def start_from(self, g: Generator) -> None:
        """Stage 2 begins: R takes G's trained encoder and decoder (§IV-D)."""
        self.E.load_state_dict(g.E.state_dict())
        self.Dec.load_state_dict(g.Dec.state_dict())

    def forward(self, x_p: torch.Tensor) -> torch.Tensor:
        neutral = x_p.new_zeros(x_p.shape[0], self.cfg.n_attrs)
        return self.Dec(self.E(x_p), neutral)


class Discriminator(nn.Module):
    """D = (critic, attribute classifier C) on one trunk of conv 4×4 / s2 →
    InstanceNorm → LeakyReLU blocks; ``forward`` returns (critic score (N,),
    attribute logits (N, n))."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        layers, c_in = [], 3
        for c in cfg.disc_channels:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.InstanceNorm2d(c, affine=True), nn.LeakyReLU(0.2)]
            c_in = c
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        side = cfg.size // 2 ** len(cfg.disc_channels)
        flat = c_in * side * side
        self.critic = nn.Sequential(nn.Linear(flat, cfg.disc_hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.disc_hidden, 1))
        self.classifier = nn.Sequential(nn.Linear(flat, cfg.disc_hidden), nn.LeakyReLU(0.2),
                                        nn.Linear(cfg.disc_hidden, cfg.n_attrs))

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x01 * 2 - 1)
        return self.critic(h).squeeze(1), self.classifier(h)

