"""folder_set: a folder of per-identity sub-folders through the same detect + align pipeline."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from facelab.faces import load_image
from facelab.faces.folder import face_set, folder_set
from facelab.faces.offline import entry_path, manifest

pytestmark = pytest.mark.faces


def _photo(name: str):
    return next(entry_path(e) for e in manifest()["faces"] if entry_path(e).name == name)


@pytest.fixture
def class_folder(tmp_path, monkeypatch):
    """Two identities with real photos from the offline set, a non-photo file and a face-less image."""
    root = tmp_path / "class"
    for person, names in {"obama": ["obama.jpg", "obama2.jpg"], "einstein": ["einstein.jpg"]}.items():
        (root / person).mkdir(parents=True)
        for n in names:
            shutil.copy(_photo(n), root / person / n)
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))  # an empty cache: the set is built here
    (root / "obama" / "notes.txt").write_text("not a photo")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(root / "einstein" / "grey.png")
    return root


def test_reads_identities_and_matches_load_image(class_folder):
    s = folder_set(class_folder, size=112, log=None)
    assert s.labels == ["einstein", "obama", "obama"]  # sorted identities, sorted files, the grey image dropped
    assert s.sources == ["einstein/einstein.jpg", "obama/obama.jpg", "obama/obama2.jpg"]
    assert s.crops.shape == (3, 3, 112, 112) and s.crops.dtype == torch.float32
    assert len(s.extra["dropped"]) == 1 and s.extra["dropped"][0].startswith("einstein/grey.png")
    want = load_image(class_folder / "obama" / "obama.jpg", size=112).crops[0]
    assert (s.crops[1] - want).abs().max() <= 0.5 / 255 + 1e-6  # the same pipeline, stored as uint8


def test_cached_then_rebuilt_when_the_folder_changes(class_folder):
    first = folder_set(class_folder, log=None)
    cached = list((class_folder.parent / "cache" / "faces").glob("folder-*.npz"))
    assert len(cached) == 1
    again = folder_set(class_folder, log=None)
    assert torch.equal(first.crops, again.crops)
    os.remove(class_folder / "obama" / "obama2.jpg")
    smaller = folder_set(class_folder, log=None)
    assert smaller.labels == ["einstein", "obama"]
    assert len(list((class_folder.parent / "cache" / "faces").glob("folder-*.npz"))) == 2


def test_face_set_resolves_data_specs(class_folder):
    assert face_set(f"folder:{class_folder}", log=None).labels == ["einstein", "obama", "obama"]
    with pytest.raises(ValueError, match="offline | lfw | folder:PATH"):
        face_set("imagenet")
    with pytest.raises(ValueError, match="valid"):
        face_set("folder:")


@pytest.mark.parametrize("make,error,match", [
    (lambda root: root / "missing", FileNotFoundError, "does not exist"),
    (lambda root: (root.mkdir(), (root / "f.jpg").write_bytes(b"x"), root / "f.jpg")[-1], NotADirectoryError, "is a file"),
    (lambda root: (root.mkdir(), root)[-1], ValueError, "no sub-folders"),
    (lambda root: ((root / "a").mkdir(parents=True), (root / "a" / "x.txt").write_text("x"), root)[-1], ValueError, "no photos"),
])
def test_bad_folders_get_clear_errors(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        folder_set(make(tmp_path / "root"), log=None)
