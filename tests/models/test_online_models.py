"""facenet-pytorch's models need the internet; offline they must fail clearly."""
import urllib.error

import pytest
import torch

from facelab import models
from facelab.models import online


def test_online_models_are_listed_only_on_request():
    assert "facenet-pytorch-vggface2" not in models.available()
    assert {"facenet-pytorch-vggface2", "facenet-pytorch-casia"} <= set(models.available(include_online=True))


def test_offline_load_raises_needs_internet(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(models.NeedsInternetError, match="needs the internet"):
        models.load("facenet-pytorch-vggface2")


def test_weights_are_read_with_weights_only(tmp_path, monkeypatch):
    """A downloaded file is loaded with torch.load(weights_only=True): a pickle
    that is not a plain state dict is refused."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    target = tmp_path / "online" / online.ONLINE["facenet-pytorch-casia"][1]
    target.parent.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, target)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        models.load("facenet-pytorch-casia")


def test_unknown_model_lists_the_pool():
    with pytest.raises(KeyError, match="mobileface"):
        models.load("no-such-model")
