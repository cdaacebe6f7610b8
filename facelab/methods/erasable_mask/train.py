"""Training ErasableMask as a stepwise generator: the three-stage curriculum
(Eq. 14–16), the noise pool, and the meta-auxiliary attack (Alg. 1, Eq. 9–12).

    model = ErasableMask(NetConfig(size=64))
    hist = facelab.history(train(model, data, surrogates, TrainConfig(epochs=(40, 30, 15))))
    model.protect(x, attributes)                     # trained in place

Every iteration yields a :class:`facelab.Step` (the trainable-method
convention, docs/erasable_mask.md):

* ``x`` — a fixed preview batch, four rows of ``n`` faces stacked on the batch
  axis: clean, attribute-edited x_b, protected x_p, restored R(x_p) (the row
  names are in ``state["rows"]``; :func:`preview_rows` splits them);
* ``losses`` — every loss term of the current stage by name, plus ``"total"``;
* ``state`` — ``stage`` (1, 2, 3; 0 for the no-curriculum ablation), ``epoch``
  (within the stage), ``weights`` {surrogate: λ_k} (Eq. 11), ``lr``
  {optimiser: learning rate}, ``noise`` (the pool member of this step),
  ``primary`` (the meta-train surrogate), ``psnr_protected`` /
  ``psnr_restored`` (preview, per face, vs clean) and ``similarity``
  {surrogate: cos(f(x_p), f(x))} of the preview.

Run as a module to train at teaching scale and store a checkpoint:
``python -m facelab.methods.erasable_mask [--fast] [--seed 0] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ...steps import Step
from . import checkpoint
from . import losses as L
from .data import Batches, FaceData
from .model import ErasableMask
from .nets import NetConfig

ROWS: tuple[str, ...] = ("clean", "edited", "protected", "restored")
ATTACKS: tuple[str, ...] = ("meta", "ensemble")
DEFAULT_SURROGATES: tuple[str, ...] = ("mobileface", "faceapi-resnet")


@dataclass(frozen=True)
class TrainConfig:
    """Every training knob (stored in the checkpoint's provenance).

    ``epochs`` per stage (the paper: 200 / 100 / 50 on CelebA-HQ; teaching
    scale keeps the 4 : 2 : 1-ish proportions on 61 faces).  Loss weights
    (the paper's values are lost; these put every term on a similar scale,
    following AttGAN where it applies): ``lambda_rec`` 100 (AttGAN λ1, Eq. 5),
    ``lambda_cls`` 10 (AttGAN λ2, Eq. 4), ``lambda_dcls`` 1 (AttGAN λ3),
    ``lambda_gp`` 10 (WGAN-GP), ``lambda_pert`` 100 (Eq. 8), ``eta`` η 10
    (Eq. 12, the perturbation intensity), ``lambda_R`` 100 (Eq. 13, an ℓ1
    like Eq. 5).  ``kappa`` κ of Eq. 8 on the [0,1] scale.  ``attack``:
    ``"meta"`` (Alg. 1) or ``"ensemble"`` (plain mean of the surrogate losses,
    the claim-(a) baseline); ``meta_alpha`` α the relative fast-weight step;
    ``dwa_T`` the temperature of Eq. 11.  ``curriculum`` False trains every
    network on every loss from the first step (claim (c)'s ablation);
    ``noise`` False drops the noise pool (claim (d)).  ``lr`` for every Adam
    (AttGAN's 2e-4 — the paper's 2e-5 is for 350 epochs of CelebA-HQ).
    """

    epochs: tuple[int, int, int] = (40, 30, 15)
    batch_size: int = 8
    lr: float = 2e-4
    lambda_rec: float = 100.0
    lambda_cls: float = 10.0
    lambda_dcls: float = 1.0
    lambda_gp: float = 10.0
    lambda_pert: float = 100.0
    eta: float = 10.0
    lambda_R: float = 100.0
    kappa: float = 30 / 255
    attack: str = "meta"
    meta_alpha: float = 0.01
    dwa_T: float = 2.0
    curriculum: bool = True
    noise: bool = True
    augmentation: bool = True
    n_preview: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.epochs) != 3 or any(int(e) < 0 for e in self.epochs) or sum(self.epochs) < 1:
            raise ValueError(f"epochs must be three non-negative counts (stage 1, 2, 3), got {self.epochs}")
        if self.attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {self.attack!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (target attributes are the batch's labels shuffled)")
        if not 0 < self.kappa < 1:
            raise ValueError(f"kappa (κ, Eq. 8) is on the [0,1] scale (30/255 = the paper's 30.0); got {self.kappa}")


def preview_rows(step: Step) -> dict[str, torch.Tensor]:
    """Split a training Step's ``x`` into its named rows (clean, edited, protected, restored)."""
    rows = step.state.get("rows", ROWS)
    n = step.x.shape[0] // len(rows)
    return {name: step.x[k * n:(k + 1) * n] for k, name in enumerate(rows)}


def _shuffled(a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """AttGAN's target attributes: the batch's label rows in a random order."""
    return a[torch.randperm(a.shape[0], generator=gen)]


def _adam(params, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _as_surrogates(surrogates) -> dict[str, nn.Module]:
    if isinstance(surrogates, Mapping):
        out = dict(surrogates)
    else:
        out = {getattr(m, "name", f"model{k}"): m for k, m in enumerate(surrogates)}
    if not out:
        raise ValueError("surrogates: pass at least one face model, e.g. [facelab.models.load('mobileface')]")
    return out


def train(
    model: ErasableMask,
    data: FaceData,
    surrogates: Sequence[nn.Module] | Mapping[str, nn.Module],
    config: TrainConfig | None = None,
) -> Iterator[Step]:
    """Train ``model`` in place on ``data``'s training split against the
    ``surrogates`` (white-box face models), yielding one :class:`Step` per
    iteration (i = 0 is the untrained start).

    Stage 1 (Eq. 14) — E, Dec, D: AttGAN (WGAN-GP critic, attribute BCE,
    ℓ1 reconstruction).  Stage 2 (Eq. 15) — E, Dec frozen; P and C start as
    copies of E, R from E/Dec; P, C, R train end to end on
    λ_pert·L_pert + η·L_adv + λ_R·L_R + λ_cls·L_cls + L_gan, with the noise
    pool between G and both the surrogates and R.  Stage 3 (Eq. 16) — R
    alone on λ_R·L_R.  D keeps training as the critic in stages 1–2.

    Meta-auxiliary attack (``config.attack == "meta"``): surrogates take turns
    as primary, k = i mod K.  Meta-train (Eq. 9): L_k at P's weights θ and the
    fast weights θ' = θ − α·∇L_k (:func:`losses.meta_inner_step`).  Meta-test
    (Eq. 10): regenerate with θ' and score the auxiliary surrogates j ≠ k.
    Eq. 12: L_adv = (λ_k·L_k(θ) + Σ_{j≠k} λ_j·L_j(θ')) / K with λ from
    Eq. 11 (:class:`losses.AdaptiveWeights`, updated at each epoch end).
    """
    cfg = config or TrainConfig()
    if tuple(data.attributes) != tuple(model.cfg.attributes):
        raise ValueError(f"data labels {data.attributes} do not match the model's attributes {model.cfg.attributes}")
    if data.size != model.cfg.size:
        raise ValueError(f"data faces are {data.size}px, the model is built for {model.cfg.size}px: "
                         f"load the data with offline_faces(size={model.cfg.size})")
    sur = _as_surrogates(surrogates)
    names = list(sur)
    for m in sur.values():
        m.eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train, a_train = data.split("train")
    batches = Batches(x_train, a_train, cfg.batch_size, cfg.seed, augmentation=cfg.augmentation)
    x_prev, a_prev = data.split("test")
    x_prev, a_prev = x_prev[:cfg.n_preview], a_prev[:cfg.n_preview]
    b_prev = 1 - a_prev  # preview target: every attribute flipped, so the edit is visible
    with torch.no_grad():
        e_prev = {n: sur[n](x_prev) for n in names}
    weights = L.AdaptiveWeights(names, cfg.dwa_T)
    G, R, D = model.G, model.R, model.D
    lr_state = {"G": cfg.lr, "R": cfg.lr, "D": cfg.lr}

    def preview() -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            edited = G.edit(x_prev, b_prev)
            protected = G.protect(x_prev, b_prev)
            restored = R(protected)
            sim = {n: F.cosine_similarity(sur[n](protected), e_prev[n], dim=-1) for n in names}
        state = {"psnr_protected": L.psnr_db(protected, x_prev), "psnr_restored": L.psnr_db(restored, x_prev),
                 "similarity": sim}
        return torch.cat([x_prev, edited, protected, restored]), state

    def state_of(stage: int, epoch: int, extra: dict | None = None) -> dict:
        px, pstate = preview()
        st = {"stage": stage, "epoch": epoch, "weights": dict(weights.weights), "lr": dict(lr_state), "rows": ROWS,
              **pstate, **(extra or {})}
        return px, st

    def critic_step(opt_d, real, fake, a) -> dict[str, torch.Tensor]:
        s_real, c_real = D(real)
        s_fake, _ = D(fake.detach())
        gp = L.gradient_penalty(D, real, fake.detach(), gen)
        d_adv = s_fake.mean() - s_real.mean()
        d_cls = L.attribute(c_real, a)
        loss = d_adv + cfg.lambda_gp * gp + cfg.lambda_dcls * d_cls
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return {"d_adv": d_adv.detach(), "d_gp": gp.detach(), "d_cls": d_cls.detach()}

    def attack_loss(x, b, e_clean, it, p_feats=None):
        """x_p, its noised version, L_adv (Eq. 9–12 or the plain ensemble), the
        per-surrogate terms, the noise drawn and the primary surrogate."""
        x_p = G.protect(x, b, p_feats)
        x_n, kind = L.noise_pool(x_p, gen) if cfg.noise else (x_p, "none")
        terms: dict[str, torch.Tensor] = {}
        if cfg.attack == "ensemble" or len(names) == 1:
            for n in names:
                terms[n] = L.dodging(sur[n], x_n, e_clean[n])
            adv = sum(terms.values()) / len(names)
            return x_p, x_n, adv, terms, kind, None
        k = names[it % len(names)]
        terms[k] = L.dodging(sur[k], x_n, e_clean[k])  # meta-train, Eq. 9
        params = dict(G.P.named_parameters())
        fast = L.meta_inner_step(params, terms[k], cfg.meta_alpha)
        x_fast = G.protect(x, b, functional_call(G.P, fast, (x,)))
        x_fast_n, _ = L.noise_pool(x_fast, gen) if cfg.noise else (x_fast, "none")
        for n in names:  # meta-test on the auxiliary tasks, Eq. 10
            if n != k:
                terms[n] = L.dodging(sur[n], x_fast_n, e_clean[n])
        adv = sum(weights.weights[n] * terms[n] for n in names) / len(names)  # Eq. 12 (η applied by the caller)
        return x_p, x_n, adv, terms, kind, k

    # -- step 0: the untrained start ------------------------------------------------------
    first_stage = 1 if cfg.curriculum else 0
    px, st = state_of(first_stage, 0)
    yield Step(0, px, {}, st)
    i = 0

    def stage_plan():
        if cfg.curriculum:
            return [(s, e) for s, e in zip((1, 2, 3), cfg.epochs) if e > 0]
        return [(0, sum(cfg.epochs))]

    for stage, n_epochs in stage_plan():
        # which networks learn in this stage
        if stage == 1:
            trainable = [*G.E.parameters(), *G.Dec.parameters()]
        elif stage == 2:
            G.start_protection()
            R.start_from(G)
            trainable = [*G.P.parameters(), *G.C.parameters(), *R.parameters()]
        elif stage == 3:
            trainable = [*R.parameters()]
        else:  # no curriculum: everything from the start (P, C, R copies of the untrained E/Dec)
            G.start_protection()
            R.start_from(G)
            trainable = [*G.parameters(), *R.parameters()]
        model.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)
        opt = _adam(trainable, cfg.lr)
        opt_d = _adam(D.parameters(), cfg.lr) if stage in (0, 1, 2) else None
        lr_state = {"G" if stage in (0, 1, 2) else "R": cfg.lr}
        if stage in (0, 2, 3):
            lr_state["R"] = cfg.lr
        if opt_d is not None:
            lr_state["D"] = cfg.lr

        for epoch in range(n_epochs):
            for x, a in batches.epoch():
                i += 1
                b = _shuffled(a, gen)
                out: dict[str, torch.Tensor] = {}
                extra: dict = {}
                if opt_d is not None:
                    D.requires_grad_(True)
                    with torch.no_grad():
                        fake = G.edit(x, b) if stage == 1 else G.protect(x, b)
                    out.update(critic_step(opt_d, x, fake, a))
                    D.requires_grad_(False)
                total = x.new_zeros(())
                if stage in (0, 1):  # Eq. 14 (AttGAN)
                    x_b = G.edit(x, b)
                    s_f, c_f = D(x_b)
                    out["rec"] = L.reconstruction(G.edit(x, a), x)
                    out["cls"] = L.attribute(c_f, b)
                    out["gan"] = -s_f.mean()
                    total = total + cfg.lambda_rec * out["rec"] + cfg.lambda_cls * out["cls"] + out["gan"]
                if stage in (0, 2):  # Eq. 15
                    with torch.no_grad():
                        e_clean = {n: sur[n](x) for n in names}
                        x_b = G.edit(x, b) if stage == 2 else None
                    if stage == 0:
                        x_b = G.edit(x, b).detach()
                    x_p, x_n, adv, terms, kind, primary = attack_loss(x, b, e_clean, i)
                    weights.record(terms)
                    s_p, c_p = D(x_p)
                    out["pert"] = L.perturbation(x_p, x_b, cfg.kappa)
                    out["adv"] = adv
                    out.update({f"adv/{n}": t.detach() for n, t in terms.items()})
                    out["restore"] = L.reconstruction(R(x_n), x)
                    out["cls_p"] = L.attribute(c_p, b)
                    out["gan_p"] = -s_p.mean()
                    total = total + (cfg.lambda_pert * out["pert"] + cfg.eta * adv + cfg.lambda_R * out["restore"]
                                     + cfg.lambda_cls * out["cls_p"] + out["gan_p"])
                    extra = {"noise": kind, "primary": primary}
                if stage == 3:  # Eq. 16
                    with torch.no_grad():
                        x_p = G.protect(x, b)
                    x_n, kind = L.noise_pool(x_p, gen) if cfg.noise else (x_p, "none")
                    out["restore"] = L.reconstruction(R(x_n), x)
                    total = cfg.lambda_R * out["restore"]
                    extra = {"noise": kind}
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                out["total"] = total.detach()
                px, st = state_of(stage, epoch, extra)
                yield Step(i, px, {k: v.detach() for k, v in out.items()}, st)
            if stage in (0, 2):
                weights.end_epoch()
    model.eval()


# -- teaching-scale command ---------------------------------------------------------------

SCALES = {
    # size, channels, disc channels, epochs per stage
    "teaching": dict(size=64, channels=(32, 64, 128, 256), disc_channels=(32, 64, 128, 256), epochs=(40, 30, 15)),
    "fast": dict(size=64, channels=(8, 16, 32, 64), disc_channels=(8, 16, 32, 64), epochs=(3, 3, 2)),
}


def configs(scale: str = "teaching", **overrides) -> tuple[NetConfig, TrainConfig]:
    """The network and training settings of a named scale (``teaching`` or
    ``fast``), with ``overrides`` for any field of either."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    s = dict(SCALES[scale])
    net_fields, train_fields = set(NetConfig.__dataclass_fields__), set(TrainConfig.__dataclass_fields__)
    unknown = set(overrides) - net_fields - train_fields
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    s.update(overrides)
    return (NetConfig(**{k: v for k, v in s.items() if k in net_fields}),
            TrainConfig(**{k: v for k, v in s.items() if k in train_fields}))


def train_and_save(scale: str = "teaching", name: str = "erasable_mask", seed: int = 0,
                   surrogates: Sequence[str] = DEFAULT_SURROGATES, command: str | None = None, log=print,
                   save: bool = True, data: str = "offline", faces=None, **overrides) -> tuple[ErasableMask, dict]:
    """Train at ``scale`` on ``data`` (``offline``, ``lfw`` or ``folder:PATH``:
    :func:`~facelab.methods.erasable_mask.data.training_faces`) and store the
    checkpoint (with provenance) under ``name`` in the facelab cache.  Returns
    the model and the per-stage record {curves, seconds}.  An epoch is one
    pass over the training faces: on a set larger than the offline one, lower
    ``epochs`` to keep the number of iterations.  ``faces``: the training faces
    already loaded from ``data`` with this ``seed`` (the command line loads them
    first, so that a bad ``--data`` is told apart from a failure in training)."""
    from ... import __version__, models
    from ...steps import history
    from .data import training_faces

    net_cfg, train_cfg = configs(scale, seed=seed, **overrides)
    torch.manual_seed(seed)
    model = ErasableMask(net_cfg)
    if faces is None:
        faces = training_faces(data, net_cfg.size, seed=seed, log=log)
    sur = {n: models.load(n) for n in surrogates}
    log(f"training ErasableMask ({scale}): {faces.description}; surrogates {list(sur)}")
    t0, c0 = time.perf_counter(), time.process_time()
    hist = history(_logged(train(model, faces, sur, train_cfg), log), keep_every=10, max_kept=50)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    final = _final_losses(hist)
    model.provenance = {
        "command": command or " ".join(["python -m facelab.methods.erasable_mask", *sys.argv[1:]]),
        "scale": scale, "seed": seed, "facelab_version": __version__, "torch_version": torch.__version__,
        "data": faces.description, "surrogates": list(sur), "net": net_cfg.to_dict(),
        "train": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(train_cfg).items()},
        "final_losses": final, "train_seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
        "load_average": round(os.getloadavg()[0], 2), "iterations": hist.iterations[-1],
        "threads": torch.get_num_threads(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if save:
        path = checkpoint.save(model, name=name)
        log(f"saved {path} after {seconds:.0f} s")
    return model, {"history": hist, "seconds": seconds}


def _final_losses(hist) -> dict[str, dict[str, float]]:
    """Per stage, the mean of every loss over that stage's last 20 % of iterations."""
    stages = hist.state_curves.get("stage", [])
    out: dict[str, dict[str, float]] = {}
    for s in sorted({int(v) for v in stages if not math.isnan(v)}):
        idx = [k for k, v in enumerate(stages) if v == s and k > 0]
        tail = idx[-max(1, len(idx) // 5):] if idx else []
        vals = {}
        for name, series in hist.curves.items():
            xs = [series[k] for k in tail if not math.isnan(series[k])]
            if xs:
                vals[name] = round(sum(xs) / len(xs), 5)
        out[f"stage{s}"] = vals
    return out


def _logged(steps: Iterator[Step], log, every: int = 50) -> Iterator[Step]:
    t0 = time.perf_counter()
    for step in steps:
        if step.i % every == 0 and step.i:
            sc = step.scalars()
            log(f"  it {step.i:5d} stage {step.state['stage']} epoch {step.state['epoch']:3d} "
                f"total {sc.get('total', float('nan')):.3f} ({time.perf_counter() - t0:.0f} s)")
        yield step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facelab.methods.erasable_mask",
                                description="Train ErasableMask on the offline faces and store a checkpoint "
                                            "in the facelab cache.")
    p.add_argument("--scale", choices=sorted(SCALES), default="teaching")
    p.add_argument("--fast", action="store_true", help="same as --scale fast")
    p.add_argument("--name", default=None, help="checkpoint name (default erasable_mask, or erasable_mask-fast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, nargs=3, default=None, metavar=("S1", "S2", "S3"))
    p.add_argument("--attack", choices=ATTACKS, default="meta")
    p.add_argument("--gamma", type=float, default=None, help="γ of Eq. 13 (0 = no clean-domain injection)")
    p.add_argument("--no-curriculum", action="store_true")
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--data", default="offline",
                   help="training faces: offline (default), lfw (internet once; 3,023 photos, so lower --epochs) "
                        "or folder:PATH (one sub-folder of photos per person)")
    p.add_argument("--shortcut-layers", type=int, default=None,
                   help="AttGAN's encoder→decoder shortcuts (default 3; AttGAN's own default is 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = "fast" if args.fast else args.scale
    overrides: dict = {"attack": args.attack, "curriculum": not args.no_curriculum, "noise": not args.no_noise}
    if args.epochs:
        overrides["epochs"] = tuple(args.epochs)
    if args.gamma is not None:
        overrides["gamma"] = args.gamma
    if args.shortcut_layers is not None:
        overrides["shortcut_layers"] = args.shortcut_layers
    name = args.name or ("erasable_mask" if scale == "teaching" else f"erasable_mask-{scale}")
    command = " ".join(["python -m facelab.methods.erasable_mask", *(argv if argv is not None else sys.argv[1:])])
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from ...faces import NeedsInternetError
    from .data import training_faces

    try:  # bad settings or a bad --data: one line; a failure in training itself keeps its traceback
        net_cfg, _ = configs(scale, seed=args.seed, **overrides)
        faces = training_faces(args.data, net_cfg.size, seed=args.seed)
    except (ValueError, OSError, NeedsInternetError) as e:
        print(f"python -m facelab.methods.erasable_mask: {e}", file=sys.stderr)
        return 2
    train_and_save(scale, name=name, seed=args.seed, command=command, data=args.data, faces=faces, **overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
