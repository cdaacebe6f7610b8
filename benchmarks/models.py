"""Forward+backward time to the input pixels, per pool model, batch 1 and 8."""
from __future__ import annotations

import torch

from facelab.models import available, load

from .timing import device_flag, device_of, min_time, write_table


def fwd_bwd(model, batch: int, device=None) -> float:
    x = torch.rand(batch, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0))
    x = x.to(device)

    def once():
        xi = x.clone().requires_grad_(True)
        model(xi).square().sum().backward()

    return min_time(once, repeats=model._repeats, device=device)


def main(args) -> None:
    torch.set_num_threads(args.threads)
    device = device_of(args)
    rows = []
    for name in available(include_optional=True):
        model = load(name, device)
        model._repeats = args.repeats
        t1, t8 = fwd_bwd(model, 1, device), fwd_bwd(model, 8, device)
        rows.append([name, str(model.input_size), f"{t1 * 1e3:.1f}", f"{t8 * 1e3:.1f}", f"{t8 / 8 * 1e3:.1f}"])
    write_table(args.out / "models.md", "Forward+backward per model", "python -m benchmarks models" + device_flag(device),
                ["model", "input", "batch 1 (ms)", "batch 8 (ms)", "per image at 8 (ms)"], rows,
                f"Minimum of {args.repeats} runs after 2 warm-up runs; random [0,1] input at the model's native size.",
                device=device)
