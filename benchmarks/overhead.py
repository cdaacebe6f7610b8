"""What the stepwise protocol costs.

1. facelab's MI-FGSM generator against a bare torch loop doing the same
   computation (same forwards/backwards, same updates), as a ratio.
2. facelab's MI-FGSM against torchattacks' ``MIFGSM`` on the same model and
   input (torchattacks attacks classifiers: the embedding model is wrapped so
   its cross-entropy gradient is the gradient of the cosine to the source).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import facelab
from facelab.methods import mifgsm
from facelab.models import load

from .timing import device_flag, device_of, min_time, synchronize, write_table

EPS, STEPS, MU = 8 / 255, 10, 1.0


def bare_loop(model, x):
    """MI-FGSM written as a plain loop: what facelab's generator computes."""
    ref = model(x).detach()
    alpha = EPS / STEPS
    x_adv, g = x.clone(), torch.zeros_like(x)
    for _ in range(STEPS):
        x_adv.requires_grad_(True)
        loss = F.cosine_similarity(model(x_adv), ref).sum()
        (grad,) = torch.autograd.grad(loss, x_adv)
        g = MU * g + grad / grad.abs().flatten(1).mean(1).view(-1, 1, 1, 1)
        x_adv = (x + (x_adv.detach() - alpha * g.sign() - x).clamp(-EPS, EPS)).clamp(0, 1)
    with torch.no_grad():
        F.cosine_similarity(model(x_adv), ref)  # facelab also reports the final step's similarity
    return x_adv


class CosineAsLogits(torch.nn.Module):
    """logits = [s·cos(f(x), f(x0)), 0]: cross-entropy on label 0 falls as the
    cosine falls, so torchattacks' untargeted MIFGSM pushes away from x0."""

    def __init__(self, model, ref, scale: float = 10.0):
        super().__init__()
        self.model, self.ref, self.scale = model, ref, scale
        # torchattacks finds the device through next(model.parameters()); facelab's
        # graphs hold their frozen weights as buffers, so give it an empty anchor
        self.device_anchor = torch.nn.Parameter(torch.zeros(0, device=ref.device), requires_grad=False)

    def forward(self, x):
        c = F.cosine_similarity(self.model(x), self.ref) * self.scale
        return torch.stack([c, torch.zeros_like(c)], dim=1)


def paired_ratio(fn_a, fn_b, rounds: int, warmup: int = 2, device=None) -> tuple[float, float, float]:
    """(median of per-round time(a)/time(b), fastest a, fastest b) over ``rounds``
    rounds that each time a and b back to back, alternating which goes first:
    on a shared, loaded machine both halves of a round see about the same load,
    so the median paired ratio is far steadier than a ratio of two minima.  On a GPU each run is
    timed until its queued work is done."""
    import statistics
    import time

    for _ in range(warmup):
        fn_a(), fn_b()
    ratios, best_a, best_b = [], float("inf"), float("inf")
    for r in range(rounds):
        times = {}
        for key, fn in ((("a", fn_a), ("b", fn_b)) if r % 2 == 0 else (("b", fn_b), ("a", fn_a))):
            t = time.perf_counter()
            fn()
            synchronize(device)
            times[key] = time.perf_counter() - t
        ratios.append(times["a"] / times["b"])
        best_a, best_b = min(best_a, times["a"]), min(best_b, times["b"])
    return statistics.median(ratios), best_a, best_b


def main(args) -> None:
    import os

    import torchattacks

    torch.set_num_threads(args.threads)
    device = device_of(args)
    load_at_start = os.getloadavg()[0]
    repeats = args.repeats // 4 or 1
    rounds = args.repeats  # facelab against the bare loop: the ratio the suite is about gets the most runs
    rows = []
    for name in ("mobileface", "facenet-casia"):
        model = load(name, device)
        x = torch.rand(1, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0)).to(device)
        ratio, t_gen, t_bare = paired_ratio(lambda: facelab.run(mifgsm(x, model, eps=EPS, steps=STEPS, mu=MU)),
                                            lambda: bare_loop(model, x), rounds, device=device)
        wrapped = CosineAsLogits(model, model(x).detach())
        atk = torchattacks.MIFGSM(wrapped, eps=EPS, alpha=EPS / STEPS, steps=STEPS, decay=MU)
        label = torch.zeros(1, dtype=torch.long, device=device)
        t_ta = min_time(lambda: atk(x, label), repeats, device=device)
        rows.append([name, f"{t_bare * 1e3:.0f}", f"{t_gen * 1e3:.0f}", f"{ratio:.3f}",
                     f"{t_ta * 1e3:.0f}", f"{t_gen / t_ta:.2f}"])
    write_table(args.out / "overhead.md", "Stepwise generator overhead (MI-FGSM, 10 steps, batch 1)",
                f"python -m benchmarks overhead --threads {args.threads} --repeats {args.repeats}" + device_flag(device),
                ["model", "bare loop (ms)", "facelab (ms)", "facelab / bare (median of paired runs)",
                 "torchattacks (ms)", "facelab / torchattacks"],
                rows, "facelab's run also checks its arguments once per call (`facelab.validate`: one read of the "
                      "image's min/max; the model's forward checks only shape and dtype) and yields 11 Steps "
                      f"(start + 10 updates). facelab / bare is the median over {rounds} rounds of the two "
                      "timed back to back (alternating which runs first), so machine load largely cancels; the "
                      "times are the fastest of those rounds, torchattacks' the fastest of "
                      f"{repeats} runs, all after 2 warm-up runs. "
                      f"Load average (1 min): {load_at_start:.1f} when this run started, "
                      f"{os.getloadavg()[0]:.1f} when it ended, on {os.cpu_count()} cores.", device=device)
