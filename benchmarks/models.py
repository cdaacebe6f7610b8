"""Forward+backward time to the input pixels, per pool model, batch 1 and 8, and the same batch 8 in
mixed precision (``facelab.models.load(name, precision=…)``: bfloat16 on a CPU, float16 on a GPU)
with how far its embeddings move from float32's."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from facelab.models import available, load

from .timing import device_flag, device_of, min_time, write_table


def fwd_bwd(model, batch: int, device=None) -> float:
    x = torch.rand(batch, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0))
    x = x.to(device)

    def once():
        xi = x.clone().requires_grad_(True)
        model(xi).square().sum().backward()

    return min_time(once, repeats=model._repeats, device=device)


def lowest_cosine(model, mixed, faces: torch.Tensor) -> float:
    """The lowest cosine between a face's float32 and mixed-precision embeddings."""
    with torch.no_grad():
        return float(F.cosine_similarity(model(faces), mixed(faces)).min())


def _cpu_flags() -> str:
    """The CPU's vector and bfloat16 flags that decide mixed precision's speed ("unknown" off Linux)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return "unknown"
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return ", ".join(shown) or "none of avx2, avx512f, avx512_bf16, amx_bf16"


def main(args) -> None:
    from facelab.faces import offline_set

    torch.set_num_threads(args.threads)
    device = device_of(args)
    mixed_type = "float16" if device.type == "cuda" else "bfloat16"
    data = offline_set(112, log=lambda *a: None)
    faces = data.crops[[data.labels.index(n) for n in data.identities[:16]]].to(device)  # 16 people, one photo each
    rows = []
    for name in available(include_optional=True):
        model = load(name, device)
        mixed = load(name, device, precision=mixed_type)
        model._repeats = mixed._repeats = args.repeats
        t1, t8, t8m = fwd_bwd(model, 1, device), fwd_bwd(model, 8, device), fwd_bwd(mixed, 8, device)
        rows.append([name, str(model.input_size), f"{t1 * 1e3:.1f}", f"{t8 * 1e3:.1f}", f"{t8 / 8 * 1e3:.1f}",
                     f"{t8m * 1e3:.1f}", f"{lowest_cosine(model, mixed, faces):.4f}"])
    write_table(args.out / "models.md", "Forward+backward per model", "python -m benchmarks models" + device_flag(device),
                ["model", "input", "batch 1 (ms)", "batch 8 (ms)", "per image at 8 (ms)", f"batch 8, {mixed_type} (ms)",
                 f"{mixed_type} vs float32: lowest cosine"], rows,
                f"Minimum of {args.repeats} runs after 2 warm-up runs; random [0,1] input at the model's native size. "
                f"{mixed_type}: the same pass with `load(name, precision=\"{mixed_type}\")` (torch.autocast around the "
                "model; pixels, embedding and gradients stay float32). Lowest cosine: between each face's float32 "
                f"and {mixed_type} embeddings, over one offline photo each of {faces.shape[0]} people; the calibrated "
                "thresholds were measured in float32, so a similarity near a threshold can change side in mixed "
                f"precision. Whether it is faster depends on the hardware (this CPU's flags: {_cpu_flags()}); "
                "compare the two batch-8 columns on yours.",
                device=device)
