"""Identity sanity of the offline set with pretrained models from the zoo:
same-person pairs score above different-person pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.faces, pytest.mark.weights]


def _auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a random genuine pair outscores a random impostor pair."""
    g = genuine[:, None]
    i = impostor[None, :]
    return float((g > i).mean() + 0.5 * (g == i).mean())


@pytest.mark.parametrize("name", ["facenet-casia", "mobileface"])
def test_genuine_pairs_score_above_impostors(offline, load_model, name):
    model = load_model(name)  # the suite's shared loader (facelab.models.load), needs `facelab fetch`
    with torch.no_grad():
        emb = torch.cat([model(offline.crops[i : i + 16]) for i in range(0, len(offline), 16)])
    pairs, same = offline.verification_pairs(n_genuine=10_000, n_impostor=10_000, seed=0)
    sim = model.similarity(emb[pairs[:, 0]], emb[pairs[:, 1]]).numpy()
    gen, imp = sim[same], sim[~same]
    auc = _auc(gen, imp)
    assert np.median(gen) > np.percentile(imp, 95), (np.median(gen), np.percentile(imp, 95))
    assert auc > 0.95, f"{name}: AUC {auc:.3f}"
    # every multi-image identity's own mean similarity beats the set's mean impostor score
    ids = offline.ids
    for ident in np.unique(ids[pairs[same, 0]]):
        own = sim[same & (ids[pairs[:, 0]] == ident)]
        assert own.mean() > imp.mean(), f"{name}: {offline.identities[ident]} {own.mean():.3f} vs {imp.mean():.3f}"
