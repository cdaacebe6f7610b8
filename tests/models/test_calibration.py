"""Threshold calibration: pair enumeration, chunked scoring, the stored table, the CLI."""
from __future__ import annotations

import urllib.error
from itertools import combinations

import numpy as np
import pytest
import torch

from facelab.evaluation.calibration import calibrate_model, pair_indices, pair_similarities
from facelab.models.calibration import threshold


def test_pair_indices_match_brute_force():
    labels = list(np.random.default_rng(0).choice(["a", "b", "c", "d"], size=23))
    genuine, impostor = pair_indices(labels)
    pairs = list(combinations(range(len(labels)), 2))
    assert genuine.tolist() == [list(p) for p in pairs if labels[p[0]] == labels[p[1]]]
    assert impostor.tolist() == [list(p) for p in pairs if labels[p[0]] != labels[p[1]]]
    g, i = pair_indices(["x"])
    assert g.shape == (0, 2) and i.shape == (0, 2)


@pytest.mark.weights
def test_chunked_similarities_equal_one_pass(load_model):
    model = load_model("faceapi-resnet")  # Euclidean metric: the sign convention matters here
    emb = torch.randn(30, model.embedding_dim, generator=torch.Generator().manual_seed(0))
    _, pairs = pair_indices([k % 4 for k in range(30)])
    whole = model.similarity(emb[pairs[:, 0]], emb[pairs[:, 1]])
    assert torch.equal(pair_similarities(model, emb, pairs, chunk=17), whole)


@pytest.mark.weights
@pytest.mark.faces
def test_packaged_thresholds_are_reproducible(load_model, offline):
    """thresholds.json says it came from `facelab calibrate --data offline`: rerunning gives it back."""
    model = load_model("mobileface")
    fresh = calibrate_model(model, offline.crops, offline.labels, fars=(0.01, 0.001))
    for far in (0.01, 0.001):
        assert fresh["thresholds"][f"{far:g}"] == pytest.approx(threshold("mobileface", far), abs=1e-4)


def test_calibrate_lfw_offline_is_a_message_not_a_traceback(monkeypatch, capsys):
    import sklearn.datasets

    from facelab import cli

    def no_network(**kwargs):
        assert kwargs["min_faces_per_person"] == 20  # not 2: that would load about 7 GB
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(sklearn.datasets, "fetch_lfw_people", no_network)
    assert cli.main(["calibrate", "--data", "lfw", "--models", "mobileface"]) == 1
    err = capsys.readouterr().err
    assert "needs the internet" in err and "Traceback" not in err
