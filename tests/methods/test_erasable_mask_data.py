"""ErasableMask's evaluation faces from another set (`--data`): every face held out, pseudo-labelled like training."""
from __future__ import annotations

import shutil

import pytest
import torch

from facelab.faces.offline import entry_path, manifest
from facelab.methods.erasable_mask import held_out_faces, offline_faces

pytestmark = [pytest.mark.weights, pytest.mark.faces]


def _photo(name: str):
    return next(entry_path(e) for e in manifest()["faces"] if entry_path(e).name == name)


def test_another_set_is_all_held_out_and_labelled(tmp_path):
    root = tmp_path / "class"
    for person, names in {"obama": ["obama.jpg", "obama2.jpg"], "einstein": ["einstein.jpg"]}.items():
        (root / person).mkdir(parents=True)
        for n in names:
            shutil.copy(_photo(n), root / person / n)
    data = held_out_faces(f"folder:{root}", 64, log=None)
    assert data.faces.shape == (3, 3, 64, 64) and data.labels.shape == (3, 3)
    assert len(data.train) == 0 and data.test.tolist() == [0, 1, 2]
    x, a = data.split("test")
    assert torch.equal(x, data.faces) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert "all held out" in data.description and "folder:class" in data.description


def test_offline_is_the_training_split():
    data, offline = held_out_faces("offline", 64, log=None), offline_faces(64, log=None)
    assert data.test.tolist() == offline.test.tolist() and torch.equal(data.faces, offline.faces)
