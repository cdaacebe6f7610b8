"""ASR, ESR and image quality of a trained ErasableMask.

* **ASR** (attack success rate, dodging) on a face model m at its calibrated
  threshold t_m = ``m.threshold(far)``: the share of protected faces x_p with
  sim_m(x_p, x) < t_m, x the same clean photo — the protected face is not
  matched to its owner.  Comparing against the very photo it came from is
  the hardest dodging case (a different photo of the person would be easier).
* **ESR** (erasion success rate): the share of restored faces R(x_p) with
  sim_m(R(x_p), x) ≥ t_m — matched to the owner again.
* **PSNR / SSIM** of restored vs clean, and of protected vs clean.

With ``distortion`` ("jpeg", 75) etc., the protected faces pass through it
before both the face model and the restorer (what a platform does between
upload and a trusted authority's download).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ...metrics.quality import psnr, ssim
from .losses import distort
from .model import ErasableMask


@torch.no_grad()
def match_rates(model: nn.Module, reference: torch.Tensor, probes: torch.Tensor, far: float = 0.01,
                batch: int = 32) -> tuple[torch.Tensor, float]:
    """Per pair, whether ``probes[i]`` matches ``reference[i]`` on ``model`` at
    its threshold for ``far`` (bool (N,)), and the threshold."""
    t = model.threshold(far)
    sims = []
    for k in range(0, reference.shape[0], batch):
        sims.append(model.similarity(model(probes[k:k + batch]), model(reference[k:k + batch])))
    return torch.cat(sims) >= t, t


@torch.no_grad()
def evaluate(em: ErasableMask, x: torch.Tensor, attributes: torch.Tensor, face_models: Mapping[str, nn.Module],
             far: float = 0.01, distortion: tuple[str, float] | None = None, seed: int = 0,
             edited: bool = True) -> dict:
    """Protect ``x`` with target ``attributes`` (N, n), erase, and score.

    Returns {"n", "far", "distortion", "psnr_protected", "psnr_restored",
    "ssim_protected", "ssim_restored" (means), "models": {name: {"threshold",
    "asr", "esr", "match_edited"}}, "outcomes": {name: {"protected_match",
    "restored_match"} per face, for paired tests}}."""
    x = em.check_faces(x)
    x_b = em.edit(x, attributes) if edited else None
    x_p = em.protect(x, attributes)
    if distortion is not None:
        gen = torch.Generator().manual_seed(seed)
        x_p = distort(x_p, distortion[0], distortion[1], gen)
    x_r = em.erase(x_p.clamp(0, 1))
    out = {
        "n": int(x.shape[0]), "far": far, "distortion": distortion,
        "psnr_protected": float(psnr(x_p, x).mean()), "psnr_restored": float(psnr(x_r, x).mean()),
        "ssim_protected": float(ssim(x_p, x).mean()), "ssim_restored": float(ssim(x_r, x).mean()),
        "psnr_protected_vs_edited": float(psnr(x_p, x_b).mean()) if edited else None,
        "models": {}, "outcomes": {},
    }
    for name, m in face_models.items():
        prot, t = match_rates(m, x, x_p, far)
        rest, _ = match_rates(m, x, x_r, far)
        edit = match_rates(m, x, x_b, far)[0].float().mean().item() if edited else None
        out["models"][name] = {"threshold": t, "asr": float((~prot).float().mean()), "esr": float(rest.float().mean()),
                               "match_edited": edit}
        out["outcomes"][name] = {"protected_match": prot.tolist(), "restored_match": rest.tolist()}
    return out
