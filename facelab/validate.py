"""Checks at the door: every public method, metric and face function validates
its arguments here, once per call, before any work starts.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that names the argument and says what to
pass instead.  Checks that return a value return it normalised (a Python
``float`` or ``int``, a float32 tensor) so the caller goes on with that.

**Images** are float RGB in [0,1], NCHW.  :func:`images` reads the values once
(min, max — NaN and ±inf propagate into them) with a single host
synchronisation per call; nothing here runs per optimisation step, and the
models' own ``forward`` only checks shape and dtype (:func:`image_layout`), so
a method's loop never waits on the device for validation.

**Dtypes.**  float16, bfloat16 and float64 images are *converted* to float32
rather than refused: the pretrained graphs compute in float32, so float32 is
what they would see anyway; the widening from half precision is exact and
the rounding from float64 (relative 6e-8) is far below one 8-bit grey level.
Refusing would only make every caller write ``.float()``.  Without the
conversion, float16 silently quantised the perturbation away (steps of
1/255 · 1.5 / 10 are below float16's spacing near 1) and float64 failed
inside the graph interpreter.  Integer and bool tensors are refused: their
scale (0..255?) cannot be guessed.

**Budgets.**  An L∞ budget above :data:`LINF_EPS_LIMIT` = 32/255 is refused
with a hint to divide by 255: such a budget no longer hides anything, and the
usual cause is a paper's 0–255 value (``eps=8``) typed in directly.
"""
from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Sequence

import torch

#: largest accepted L∞ budget (and L∞ step) on the [0,1] scale; above it the
#: value is taken for 0–255 units
LINF_EPS_LIMIT = 32 / 255
#: tolerance on the [0,1] range (float rounding from resampling / colour conversion)
RANGE_TOLERANCE = 1e-4


def _kind(value: Any) -> str:
    return type(value).__name__


# -- images -------------------------------------------------------------------


def image_layout(x: Any, name: str = "images") -> torch.Tensor:
    """Shape and dtype only (no value is read, so no device sync): a float
    tensor of shape (N, 3, H, W) with N, H, W ≥ 1.  Returns it as float32
    (float16/bfloat16/float64 are converted, see the module docstring)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (float RGB in [0,1], NCHW); got {_kind(x)}. "
                        "Read photos with facelab.faces.load_image(...).crops")
    if x.ndim == 3 and x.shape[0] == 3:
        raise ValueError(f"{name} must have shape (N, 3, H, W); got one image {tuple(x.shape)}: "
                         f"pass {name}[None] (or .unsqueeze(0)) to make a batch of one")
    if x.ndim == 3 and x.shape[-1] == 3:
        raise ValueError(f"{name} must have shape (N, 3, H, W); got one channels-last image {tuple(x.shape)}: "
                         f"pass {name}.permute(2, 0, 1)[None]")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, 3, H, W) (RGB, NCHW); got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        if x.shape[-1] == 3:
            fix = f"channels come last: pass {name}.permute(0, 3, 1, 2)"
        elif x.shape[1] == 1:
            fix = f"grey images: pass {name}.expand(-1, 3, -1, -1)"
        else:
            fix = "facelab works on RGB images"
        raise ValueError(f"{name} must have shape (N, 3, H, W) (RGB, NCHW); got shape {tuple(x.shape)} ({fix})")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one image")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} has no pixels (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        hint = f"divide by 255: {name}.float() / 255" if x.dtype == torch.uint8 else f"convert with {name}.float()"
        raise ValueError(f"{name} must be a float tensor with values in [0,1]; got dtype {x.dtype} ({hint})")
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def images(x: Any, name: str = "images", *, max_value: float = 1.0) -> torch.Tensor:
    """A float32 (N, 3, H, W) batch with finite values in [0, ``max_value``]
    (one host sync).  Returns the batch as float32 (the same tensor when it
    already is)."""
    x = image_layout(x, name)
    _values(x, name, max_value)
    return x


def image(x: Any, name: str = "image") -> torch.Tensor:
    """One float32 image (3, H, W) — or (1, 3, H, W) — with finite values in [0,1];
    returned with the shape it came with."""
    if isinstance(x, torch.Tensor) and x.ndim == 3:
        return images(x[None], name)[0]
    if isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[0] != 1:
        raise ValueError(f"{name} must be one image (3, H, W) or (1, 3, H, W); got shape {tuple(x.shape)}")
    return images(x, name)


def _values(x: torch.Tensor, name: str, max_value: float = 1.0) -> None:
    lo, hi = torch.aminmax(x.detach())  # NaN propagates into both
    lo, hi = torch.stack([lo, hi]).tolist()  # the one host sync of the check
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(x.detach())).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); every pixel must be a finite "
                         f"number in [0,{max_value:g}] (check what produced {name})")
    if lo < -RANGE_TOLERANCE or hi > max_value + RANGE_TOLERANCE:
        hint = (f" — these look like 0–255 values: pass {name} / 255" if max_value == 1.0 and hi > 1.5 and lo >= -1e-3
                else "; facelab models own their normalisation: pass plain RGB scaled to [0,1]")
        raise ValueError(f"{name} must have values in [0,{max_value:g}]; got min {lo:.4g}, max {hi:.4g}{hint}")


def same_batch(x: torch.Tensor, y: torch.Tensor, x_name: str, y_name: str) -> None:
    """``y`` must have ``x``'s shape (image pairs compared pixel by pixel)."""
    if x.shape != y.shape:
        raise ValueError(f"{x_name} and {y_name} must have the same shape (N, 3, H, W); "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")


def image_list(xs: Any, name: str) -> list[torch.Tensor]:
    """A non-empty sequence of image batches, each checked with :func:`images`."""
    if isinstance(xs, torch.Tensor):
        return [images(xs, name)]
    if isinstance(xs, (str, bytes)) or not isinstance(xs, Sequence):
        raise TypeError(f"{name} must be an image batch (N, 3, H, W) or a list of them; got {_kind(xs)}")
    if len(xs) == 0:
        raise ValueError(f"{name} is an empty list; pass at least one image batch")
    return [images(t, f"{name}[{k}]") for k, t in enumerate(xs)]


# -- numbers ------------------------------------------------------------------


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """A finite real number in the stated interval, as a float.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; ``hint``
    (e.g. "on the [0,1] scale, e.g. 8/255") is added to every message."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{_h(hint)}; got {_kind(value)} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number{_h(hint)}; got {v}")
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        if high is None:
            want = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            want = f"{'<' if high_open else '<='} {high:g}"
        else:
            want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be {want}{_h(hint)}; got {v:g}")
    return v


def _h(hint: str) -> str:
    return f" ({hint})" if hint else ""


def positive(value: Any, name: str, hint: str = "") -> float:
    """A finite number > 0."""
    return number(value, name, low=0.0, low_open=True, hint=hint)


def non_negative(value: Any, name: str, hint: str = "") -> float:
    """A finite number ≥ 0."""
    return number(value, name, low=0.0, hint=hint)


def probability(value: Any, name: str, hint: str = "") -> float:
    """A finite number in [0, 1]."""
    return number(value, name, low=0.0, high=1.0, hint=hint)


def integer(value: Any, name: str, *, minimum: int | None = 1, maximum: int | None = None, hint: str = "") -> int:
    """An ``int`` (numpy integers too; not a bool or a float such as 10.0) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fix = f" (pass int({value!r}))" if isinstance(value, float) and math.isfinite(value) and value == int(value) else ""
        raise TypeError(f"{name} must be an int{_h(hint)}; got {_kind(value)} {value!r}{fix}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}{_h(hint)}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}{_h(hint)}; got {v}")
    return v


def optional_integer(value: Any, name: str, *, minimum: int = 1, hint: str = "") -> int | None:
    """None, or an int ≥ ``minimum``."""
    return None if value is None else integer(value, name, minimum=minimum, hint=hint)


def odd_size(value: Any, name: str) -> int:
    """A kernel or window size: an odd int ≥ 1."""
    v = integer(value, name, minimum=1, hint="an odd kernel size, e.g. 7")
    if v % 2 == 0:
        raise ValueError(f"{name} must be odd so the kernel has a centre pixel; got {v} (use {v - 1} or {v + 1})")
    return v


def seed(value: Any, name: str = "seed") -> int:
    """A seed for ``torch.Generator.manual_seed``: an int."""
    return integer(value, name, minimum=None)


def flag(value: Any, name: str) -> bool:
    """True or False (a numpy bool too)."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {_kind(value)} {value!r}")


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    """One of ``options``; a typo gets the valid values and the closest one."""
    if isinstance(value, str) and value in options:
        return value
    valid = ", ".join(repr(o) for o in options)
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.5) if isinstance(value, str) else []
    guess = f" — did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name} must be one of {valid}; got {value!r}{guess}")


# -- budgets ------------------------------------------------------------------


def budget(eps: Any, norm: str, name: str = "eps", *, image_numel: int | None = None, example: str = "8/255") -> float:
    """A perturbation budget on the [0,1] scale: finite and > 0; for L∞ at most
    :data:`LINF_EPS_LIMIT` (a larger one is taken for 0–255 units); for L2 at
    most √(C·H·W) when ``image_numel`` = C·H·W is given (no [0,1] image
    pair is further apart)."""
    v = number(eps, name, hint=f"a budget on the [0,1] pixel scale, e.g. {example}" if norm == "linf"
               else "an L2 budget on the [0,1] pixel scale, e.g. 2.0 for a 112x112 crop")
    if v <= 0:
        raise ValueError(f"{name} must be > 0 (a budget on the [0,1] pixel scale, e.g. {example}); got {v:g}")
    if norm == "linf" and v > LINF_EPS_LIMIT:
        raise ValueError(
            f"{name}={v:g} looks like 0–255 units: budgets are on the [0,1] pixel scale. "
            f"Pass {name}={v:g}/255 (= {v / 255:.4g}); L∞ values above 32/255 are refused")
    if norm == "l2" and image_numel is not None and v > math.sqrt(image_numel):
        raise ValueError(
            f"{name}={v:g} is larger than any L2 distance between two [0,1] images of this size "
            f"(√{image_numel} = {math.sqrt(image_numel):.4g}); is it in 0–255 units? Pass {name}={v:g}/255")
    return v


def step_size(alpha: Any, norm: str, name: str = "alpha") -> float:
    """A step size on the [0,1] scale: finite, > 0, and for L∞ at most
    :data:`LINF_EPS_LIMIT` (a larger one is taken for 0–255 units)."""
    v = positive(alpha, name, hint="a step on the [0,1] pixel scale, e.g. 1/255")
    if norm == "linf" and v > LINF_EPS_LIMIT:
        raise ValueError(f"{name}={v:g} looks like 0–255 units: steps are on the [0,1] pixel scale. "
                         f"Pass {name}={v:g}/255 (= {v / 255:.4g})")
    return v


__all__ = [
    "LINF_EPS_LIMIT", "image_layout", "images", "image", "image_list", "same_batch", "number", "positive",
    "non_negative", "probability", "integer", "optional_integer", "odd_size", "seed", "flag", "choice", "budget",
    "step_size", "check_images",
]


def check_images(x: Any, what: str = "images") -> torch.Tensor:
    """The original name of :func:`images` (kept for code written against
    ``facelab.models.zoo.check_images``): raises unless ``x`` is float RGB in
    [0,1], NCHW, non-empty and finite; returns it as float32."""
    return images(x, what)
