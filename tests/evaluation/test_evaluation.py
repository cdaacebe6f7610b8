"""The evaluation layer (facelab.evaluation): embeddings, thresholds with their source, results tables."""
import sys
import types

import pytest
import torch

from facelab.evaluation import EmbeddingCache, Table, Threshold, embed, resolve_thresholds
from facelab.metrics.verification import threshold_at_far
from facelab.models.calibration import NotCalibratedError
from facelab.models.synthetic import synthetic_model


def _faces(n, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_embed_in_chunks_equals_one_pass_and_the_cache_embeds_once():
    model = synthetic_model(seed=1)
    x = _faces(7)
    with torch.no_grad():
        whole = model(x)
    assert torch.allclose(embed(model, x, batch=3), whole, atol=1e-6)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    cache = EmbeddingCache(x, batch=4)
    first = cache(model)
    assert len(calls) == 2 and "synthetic" in cache
    assert cache(model) is first and len(calls) == 2
    with pytest.raises(ValueError, match="no images"):
        embed(model, x[:0])


class _Uncalibrated(torch.nn.Module):
    """A synthetic model whose cache has no stored threshold (what a fresh model sees)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.name, self.metric = inner, "uncalibrated", "cosine"

    def forward(self, x):
        return self.inner(x)

    def similarity(self, a, b):
        return self.inner.similarity(a, b)

    def threshold(self, far):
        raise NotCalibratedError(f"{self.name} has no calibrated threshold")


class _Set:
    def __init__(self, crops, ids):
        self.crops, self.ids = crops, ids


def test_thresholds_say_where_they_come_from():
    calibrated = synthetic_model(seed=1)  # answers 0.5 for any FAR, as a stored calibration would
    fresh = _Uncalibrated(synthetic_model(seed=2))
    face_set = _Set(_faces(6), [0, 0, 1, 1, 2, 2])
    out = resolve_thresholds([calibrated, fresh], far=0.1, face_set=face_set)
    assert out["synthetic"].value == 0.5 and out["synthetic"].source.startswith("calibrated")
    t = out["uncalibrated"]
    assert isinstance(t, Threshold) and t.impostor_pairs == 12 and "12 impostor pairs" in t.source
    with torch.no_grad():
        e = fresh(face_set.crops)
        s = fresh.similarity(e[:, None], e[None])
    impostor = torch.stack([s[i, j] for i in range(6) for j in range(i + 1, 6) if i // 2 != j // 2])
    assert t.value == pytest.approx(threshold_at_far(impostor, 0.1)) and float(t) == t.value
    with pytest.raises(ValueError, match="no impostor pair"):
        resolve_thresholds([fresh], far=0.1, face_set=_Set(_faces(3), [0, 0, 0]))


def test_other_errors_are_not_taken_for_a_missing_calibration():
    class Broken(_Uncalibrated):
        def threshold(self, far):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        resolve_thresholds([Broken(synthetic_model())], far=0.1, face_set=_Set(_faces(4), [0, 0, 1, 1]))


def test_table_renders_markdown_and_dataframes(monkeypatch):
    t = Table([{"model": "a", "rate": 0.25, "n": 4}, {"model": "b", "rate": float("nan"), "extra": None}])
    assert t.columns == ["model", "rate", "n", "extra"]
    md = t.to_markdown()
    assert md.splitlines()[0] == "| model | rate | n | extra |"
    assert "| a | 0.250 | 4 |  |" in md and "| b | — |  |  |" in md
    assert t.where(model="b").one()["extra"] is None and t.column("n") == [4, None]
    with pytest.raises(KeyError):
        t.one(model="c")

    made = {}
    fake = types.SimpleNamespace(DataFrame=lambda rows, columns: made.update(rows=rows, columns=columns) or "frame")
    monkeypatch.setitem(sys.modules, "pandas", fake)
    assert t.to_dataframe(["model", "rate"]) == "frame"
    assert made == {"rows": list(t), "columns": ["model", "rate"]}
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        t.to_dataframe()
