"""LFW / Olivetti loaders: the offline error path, and the alignment path on fake data."""
from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image
from sklearn.utils import Bunch

from facelab.faces import IdentitySet, NeedsInternetError, lfw, olivetti


def _offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("loader, fetcher", [(lfw, "fetch_lfw_people"), (olivetti, "fetch_olivetti_faces")])
def test_offline_raises_needs_internet(monkeypatch, loader, fetcher):
    monkeypatch.setattr(sklearn.datasets, fetcher, _offline)
    with pytest.raises(NeedsInternetError, match="needs the internet") as exc:
        loader()
    assert isinstance(exc.value, RuntimeError)
    assert "offline_set" in str(exc.value)


def test_not_cached_and_no_download(monkeypatch, tmp_path):
    def not_found(**kwargs):
        assert kwargs["download_if_missing"] is False
        raise OSError("Data not found and `download_if_missing` is False")

    monkeypatch.setattr(sklearn.datasets, "fetch_olivetti_faces", not_found)
    with pytest.raises(NeedsInternetError, match=str(tmp_path)):
        olivetti(data_home=str(tmp_path), download_if_missing=False)


def test_lfw_call_and_alignment(monkeypatch, tmp_path, astronaut):
    """The exact scikit-learn call, then MTCNN alignment and the on-disk cache."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    seen = {}
    face = np.asarray(Image.fromarray(astronaut).crop((100, 0, 350, 250)), dtype=np.float32) / 255.0
    blank = np.full((250, 250, 3), 0.5, np.float32)

    def fake(**kwargs):
        seen.update(kwargs)
        return Bunch(
            images=np.stack([face, face[:, ::-1], blank]),
            target=np.array([0, 0, 1]),
            target_names=np.array(["Eileen Collins", "Nobody"]),
        )

    monkeypatch.setattr(sklearn.datasets, "fetch_lfw_people", fake)
    s = lfw(min_faces_per_person=2, size=112)
    assert seen["color"] is True and seen["resize"] == 1.0 and seen["slice_"] is None
    assert seen["min_faces_per_person"] == 2
    assert isinstance(s, IdentitySet) and len(s) == 2 and int(s.extra["dropped"]) == 1
    assert s.labels == ["Eileen Collins", "Eileen Collins"] and s.crops.shape == (2, 3, 112, 112)
    assert list((tmp_path / "faces").glob("lfw-2-112-*.npz")), "aligned crops are cached"
    again = lfw(min_faces_per_person=2, size=112)
    assert np.array_equal(again.crops.numpy(), s.crops.numpy())


def test_olivetti_grey_to_rgb(monkeypatch, tmp_path, astronaut):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    face = Image.fromarray(astronaut).crop((150, 40, 310, 200)).convert("L").resize((64, 64))
    img = np.asarray(face, dtype=np.float32) / 255.0
    monkeypatch.setattr(
        sklearn.datasets, "fetch_olivetti_faces", lambda **kw: Bunch(images=np.stack([img, img]), target=np.array([3, 3]))
    )
    plain = olivetti(size=112, align=False)
    assert plain.crops.shape == (2, 3, 112, 112) and plain.labels == ["olivetti-03"] * 2
    assert np.allclose(plain.crops[:, 0].numpy(), plain.crops[:, 2].numpy())
    aligned = olivetti(size=112)
    assert len(aligned) == 2, "MTCNN finds the face in a 64x64 tight grey crop"
