"""ErasableMask's faces from another set (`--data`): for evaluation every face held out, for training a seeded
split; pseudo-labelled like the offline set; a bad set is one line from the training command."""
from __future__ import annotations

import shutil

import pytest
import torch

from facelab.faces.offline import entry_path, manifest
from facelab.methods.erasable_mask import held_out_faces, offline_faces, training_faces
from facelab.methods.erasable_mask.train import main as train_main

pytestmark = [pytest.mark.weights, pytest.mark.faces]


def _photo(name: str):
    return next(entry_path(e) for e in manifest()["faces"] if entry_path(e).name == name)


def _class_folder(tmp_path, people=None):
    root = tmp_path / "class"
    people = people or {"obama": ["obama.jpg", "obama2.jpg"], "einstein": ["einstein.jpg"]}
    for person, names in people.items():
        (root / person).mkdir(parents=True)
        for n in names:
            shutil.copy(_photo(n), root / person / n)
    return root


def test_another_set_is_all_held_out_and_labelled(tmp_path):
    root = _class_folder(tmp_path)
    data = held_out_faces(f"folder:{root}", 64, log=None)
    assert data.faces.shape == (3, 3, 64, 64) and data.labels.shape == (3, 3)
    assert len(data.train) == 0 and data.test.tolist() == [0, 1, 2]
    x, a = data.split("test")
    assert torch.equal(x, data.faces) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert "all held out" in data.description and "folder:class" in data.description


def test_offline_is_the_training_split():
    data, offline = held_out_faces("offline", 64, log=None), offline_faces(64, log=None)
    assert data.test.tolist() == offline.test.tolist() and torch.equal(data.faces, offline.faces)


def test_training_on_another_set_splits_it_by_seed(tmp_path):
    root = _class_folder(tmp_path, {"franck": ["franck_01829.jpg", "franck_02045.jpg", "franck_02159.jpg"],
                                    "einstein": ["einstein.jpg"], "cage": ["cage.jpg", "cage2_crop.jpg"]})
    data = training_faces(f"folder:{root}", 64, test_fraction=0.34, seed=0, log=None)
    held = held_out_faces(f"folder:{root}", 64, log=None)
    assert torch.equal(data.faces, held.faces) and torch.equal(data.labels, held.labels)
    assert len(data.test) == 2 and len(data.train) == 4
    assert sorted([*data.train.tolist(), *data.test.tolist()]) == list(range(6))
    assert "4 train / 2 test images (seed 0)" in data.description
    other = training_faces(f"folder:{root}", 64, test_fraction=0.34, seed=1, log=None)
    assert other.test.tolist() != data.test.tolist() or other.train.tolist() != data.train.tolist()
    with pytest.raises(ValueError, match="at least 2"):
        training_faces(f"folder:{_class_folder(tmp_path / 'small', {'einstein': ['einstein.jpg']})}", 64, log=None)


def test_offline_training_faces_are_the_offline_set():
    assert training_faces("offline", 64, log=None).test.tolist() == offline_faces(64, log=None).test.tolist()


def test_training_command_names_a_bad_data_set_in_one_line(tmp_path, capsys):
    assert train_main(["--fast", "--data", f"folder:{tmp_path / 'nowhere'}", "--name", "never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err


def test_training_command_keeps_the_traceback_of_a_failure_in_training(monkeypatch):
    """Only loading the data is worded as one line: an error raised while training is a bug, and keeps its traceback."""
    import importlib

    # the package exports functions named like these modules, so the modules are looked up by name
    data_module = importlib.import_module("facelab.methods.erasable_mask.data")
    train_module = importlib.import_module("facelab.methods.erasable_mask.train")

    monkeypatch.setattr(data_module, "training_faces", lambda *a, **k: "the loaded faces")

    def failing(*args, faces, **kwargs):
        assert faces == "the loaded faces"  # loaded once, by the command line, and handed over
        raise ValueError("a bug in training")

    monkeypatch.setattr(train_module, "train_and_save", failing)
    with pytest.raises(ValueError, match="a bug in training"):
        train_main(["--fast", "--name", "never"])
