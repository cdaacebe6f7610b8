"""The bad-input corpus: one table of wrong inputs through the public API.

Each row calls facelab the way a user could get wrong and says what must
happen: an error of exactly this type whose message matches (it names the
argument and, where there is one, the fix), or — for inputs facelab accepts
on purpose (float16/float64 images, a damaged cache that ``fetch`` repairs, a
truncated npz that is rebuilt) — a callable that checks the right result
itself and returns ``OK``.  CLI rows must exit with 1 and print one line on
stderr, no traceback.  Rows that need the fetched weights are marked
``weights``; cache rows use a temporary ``FACELAB_CACHE``.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import signal
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

import facelab
from facelab import cache
from facelab.cache import DamagedCacheError, Member, Package

OK = "the right result"
CLI = "one line on stderr, exit status 1"


@dataclass
class Ctx:
    """What a row may use: lazily loaded weights and faces, a temporary folder
    (also the FACELAB_CACHE of cache rows), pytest's monkeypatch and capsys."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture
    request: pytest.FixtureRequest

    @property
    def model(self):
        return self.request.getfixturevalue("load_model")("mobileface")

    @property
    def other(self):
        return self.request.getfixturevalue("load_model")("mobilefacenet")

    @property
    def face(self) -> torch.Tensor:
        return self.request.getfixturevalue("astronaut_face")

    def temp_cache(self) -> Path:
        self.monkeypatch.setenv("FACELAB_CACHE", str(self.tmp / "cache"))
        return self.tmp / "cache"

    def cli(self, *argv: str) -> tuple[int, str]:
        from facelab import cli

        rc = cli.main(list(argv))
        return rc, self.capsys.readouterr().err


def rand(*shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def with_pixel(value: float) -> torch.Tensor:
    x = rand(1, 3, 112, 112)
    x[0, 1, 50, 60] = value
    return x


X = rand(1, 3, 112, 112)  # a valid image batch (validation rows fail before any model runs)
TARGETS = rand(3, 3, 112, 112, seed=1)


# -- helpers for the rows that check a right result -------------------------------


def _similarity_after(ctx: Ctx, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    from facelab.methods import mifgsm

    last = facelab.run(mifgsm(x, ctx.model, steps=3))
    return last.x, float(last.losses["sim/mobileface"].mean())


def float16_is_converted_and_protected(ctx: Ctx):
    x16 = ctx.face.half()
    out, sim = _similarity_after(ctx, x16)
    assert out.dtype == torch.float32
    assert sim < 0.9, "float16 input must be protected like float32 (it used to leave similarity at 1.0)"
    assert (out - x16.float()).abs().amax() <= 8 / 255 + 1e-6
    return OK


def float64_is_converted_and_equals_float32(ctx: Ctx):
    out64, _ = _similarity_after(ctx, ctx.face.double())
    out32, _ = _similarity_after(ctx, ctx.face)
    assert out64.dtype == torch.float32 and torch.equal(out64, out32)
    return OK


def model_call_converts_float64(ctx: Ctx):
    with torch.no_grad():
        assert torch.equal(ctx.model(ctx.face.double()), ctx.model(ctx.face))
    return OK


def _steps(n: int):
    for i in range(n):
        yield facelab.Step(i, torch.zeros(1, 3, 4, 4), {"loss": torch.tensor(float(i))})


def history_max_kept_1_keeps_first_and_last(ctx: Ctx):
    hist = facelab.history(_steps(50), max_kept=1)
    assert [s.i for s in hist.steps] == [0, 49] and len(hist.curves["loss"]) == 50
    return OK


# -- cache rows: a registry replaced by a tarball built here (as in test_cache.py) --


WEIGHTS = b"\x00\x01weights" * 500


def _fake_registry(ctx: Ctx) -> tuple[Package, list]:
    ctx.temp_cache()
    calls = []

    def download(pkg, into):
        calls.append(pkg.spec)
        path = into / "pkg.tgz"
        with tarfile.open(path, "w:gz") as tf:
            info = tarfile.TarInfo("package/model.bin")
            info.size = len(WEIGHTS)
            tf.addfile(info, io.BytesIO(WEIGHTS))
        return path

    ctx.monkeypatch.setattr(cache, "_download", download)
    pkg = Package("npm", "demo-weights", "1.0.0", (Member("package/model.bin", "model.bin", hashlib.sha256(WEIGHTS).hexdigest()),))
    cache.fetch(pkg, log=lambda *_: None)
    return pkg, calls


def _damage_in_place(path: Path, keep_mtime: bool = False) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: same size
    with open(path, "r+b") as fh:
        fh.write(data)
    if keep_mtime:
        import os

        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def damaged_weights_refused_at_load(ctx: Ctx):
    pkg, _ = _fake_registry(ctx)
    _damage_in_place(pkg.folder / "model.bin")
    return cache.require(pkg, "model.bin")


def fetch_repairs_damaged_weights(ctx: Ctx):
    pkg, calls = _fake_registry(ctx)
    _damage_in_place(pkg.folder / "model.bin")
    logged = []
    cache.fetch(pkg, log=logged.append)
    assert (pkg.folder / "model.bin").read_bytes() == WEIGHTS and len(calls) == 2
    assert any("model.bin is damaged" in line for line in logged)
    assert cache.require(pkg, "model.bin").exists()
    return OK


def fetch_verify_finds_damage_behind_a_restored_mtime(ctx: Ctx):
    pkg, calls = _fake_registry(ctx)
    _damage_in_place(pkg.folder / "model.bin", keep_mtime=True)
    assert cache.is_complete(pkg)  # size and mtime as recorded: the cheap check cannot see it
    cache.fetch(pkg, log=lambda *_: None)
    assert len(calls) == 1
    cache.fetch(pkg, log=lambda *_: None, verify=True)  # `facelab fetch --verify` hashes every file
    assert (pkg.folder / "model.bin").read_bytes() == WEIGHTS and len(calls) == 2
    return OK


def touched_but_intact_file_still_loads(ctx: Ctx):
    pkg, _ = _fake_registry(ctx)
    (pkg.folder / "model.bin").touch()  # new mtime, same bytes: hashed once, accepted, recorded again
    assert cache.require(pkg, "model.bin").exists() and cache.is_complete(pkg)
    return OK


def _copy_real_models_and_damage_mobileface(ctx: Ctx) -> None:
    from facelab.models import packages, zoo

    src = packages.HUMAN.folder
    ctx.temp_cache()
    shutil.copytree(src, packages.HUMAN.folder)  # copy2 keeps the mtimes the manifest recorded
    ctx.monkeypatch.setattr(zoo, "_CACHE", {})  # no graph built earlier in this process
    _damage_in_place(packages.HUMAN.folder / "mobileface.bin")


def damaged_real_weights_refused_at_load(ctx: Ctx):
    from facelab.models import load

    _copy_real_models_and_damage_mobileface(ctx)
    return load("mobileface")


def _npz(ctx: Ctx) -> tuple[Path, Callable[[], dict], list]:
    ctx.temp_cache()
    path = cache.cache_dir() / "faces" / "set.npz"
    builds = []

    def build():
        builds.append(1)
        return {"crops": np.arange(3000, dtype=np.uint8).reshape(10, 300)}

    cache.load_or_build_npz(path, build)
    return path, build, builds


def truncated_npz_is_rebuilt(ctx: Ctx):
    path, build, builds = _npz(ctx)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    data = cache.load_or_build_npz(path, build)
    assert len(builds) == 2 and data["crops"].shape == (10, 300)
    assert cache.load_or_build_npz(path, build)["crops"].shape == (10, 300) and len(builds) == 2
    return OK


def corrupted_npz_member_is_rebuilt(ctx: Ctx):
    path, build, builds = _npz(ctx)
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF  # inside the array's data: the zip CRC fails on read
    path.write_bytes(bytes(raw))
    data = cache.load_or_build_npz(path, build)
    assert len(builds) == 2 and np.array_equal(data["crops"], build()["crops"])
    return OK


def interrupted_cache_write_leaves_the_old_file(ctx: Ctx):
    target = ctx.temp_cache() / "thresholds.json"
    cache.atomic_write(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with cache.atomic_open(target) as fh:
            fh.write(b"half of the new")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["thresholds.json"]
    return OK


def cache_is_a_file(ctx: Ctx):
    f = ctx.tmp / "not-a-folder"
    f.write_text("x")
    ctx.monkeypatch.setenv("FACELAB_CACHE", str(f))
    return cache.cache_dir()


def corrupt_thresholds_json(ctx: Ctx):
    from facelab.models.calibration import threshold

    ctx.temp_cache().mkdir(parents=True)
    (cache.cache_dir() / "thresholds.json").write_text('{"models": {"mobileface": ')  # cut short
    return threshold("mobileface")


# -- CLI rows --------------------------------------------------------------------


def calibrate_out_existing_user_file(ctx: Ctx):
    user = ctx.tmp / "package.json"
    user.write_text('{"name": "my-project", "version": "1.0.0"}\n')
    rc, err = ctx.cli("calibrate", "--models", "mobileface", "--out", str(user))
    assert user.read_text() == '{"name": "my-project", "version": "1.0.0"}\n', "the user's file was changed"
    return rc, err


def calibrate_out_folder(ctx: Ctx):
    return ctx.cli("calibrate", "--models", "mobileface", "--out", str(ctx.tmp))


def cli_with_cache_a_file(ctx: Ctx):
    f = ctx.tmp / "cachefile"
    f.write_text("x")
    ctx.monkeypatch.setenv("FACELAB_CACHE", str(f))
    return ctx.cli("fetch", "--models-only")


def cli_damaged_cache_at_calibrate(ctx: Ctx):
    _copy_real_models_and_damage_mobileface(ctx)
    ctx.monkeypatch.setattr("facelab.faces.offline_set", lambda: _tiny_set())
    return ctx.cli("calibrate", "--models", "mobileface", "--out", str(ctx.tmp / "th.json"))


def calibrate_updates_its_own_file_and_force_replaces_a_user_file(ctx: Ctx):
    ctx.monkeypatch.setattr("facelab.faces.offline_set", lambda: _tiny_set())
    own = ctx.tmp / "th.json"
    own.write_text(json.dumps({"models": {"earlier": {"metric": "cosine", "thresholds": {"0.01": 0.5}}}}))
    assert ctx.cli("calibrate", "--models", "mobileface", "--out", str(own)) == (0, "")
    table = json.loads(own.read_text())
    assert set(table["models"]) == {"earlier", "mobileface"} and table["written_by"] == "facelab calibrate"
    user = ctx.tmp / "notes.json"
    user.write_text("[1, 2, 3]")
    assert ctx.cli("calibrate", "--models", "mobileface", "--out", str(user), "--force") == (0, "")
    assert set(json.loads(user.read_text())["models"]) == {"mobileface"}
    assert sorted(p.name for p in ctx.tmp.iterdir()) == ["notes.json", "th.json"]  # no temporary file left
    return OK


def _tiny_set():
    from facelab.faces import IdentitySet

    return IdentitySet(crops=rand(4, 3, 112, 112), labels=["a", "a", "b", "b"], sources=["s"] * 4,
                       credits=["c"] * 4, timestamps=np.full(4, np.nan), credit="test", name="tiny", size=112)


# -- the table ---------------------------------------------------------------------


def _m():
    from facelab import methods

    return methods


def _paste(crop):
    from facelab.faces import paste_back, similarity_transform, template

    t = similarity_transform(template(112) + 40, 112, (200, 200))
    return paste_back(rand(3, 200, 200), crop, t)


def _load_image(**kw):
    from facelab.faces import load_image

    return load_image((rand(64, 64, 3).numpy() * 255).astype(np.uint8), **kw)


W = pytest.mark.weights
M = _m

CASES = [
    # --- images into methods (the Why list first) ---
    ("nan-pixel", lambda c: M().pgd(with_pixel(float("nan")), c.model), ValueError, r"x contains 1 NaN or infinite", W),
    ("inf-pixel", lambda c: M().mifgsm(with_pixel(float("inf")), c.model), ValueError, r"x contains 1 NaN or infinite", W),
    ("nan-target", lambda c: M().pgd(X, c.model, objective="impersonation", target=with_pixel(float("nan"))),
     ValueError, r"target contains 1 NaN", W),
    ("nan-targets-tip-im", lambda c: M().tip_im(X, with_pixel(float("nan")), c.model), ValueError, r"targets contains 1 NaN", W),
    ("nan-user-images", lambda c: M().targeted_anonymization(X, with_pixel(float("nan")), victim=c.model,
                                                             authorized=c.other, th_old=0.3),
     ValueError, r"user_images contains 1 NaN", W),
    ("nan-user-images-list", lambda c: M().targeted_anonymization(X, [with_pixel(float("nan"))], victim=c.model,
                                                                  authorized=c.other, th_old=0.3),
     ValueError, r"user_images\[0\] contains 1 NaN", W),
    ("x-0-255", lambda c: M().pgd(X * 255, c.model), ValueError, r"x must have values in \[0,1\].*x / 255", W),
    ("x-uint8", lambda c: M().pgd((X * 255).byte(), c.model), ValueError, r"dtype torch.uint8.*float\(\) / 255", W),
    ("x-empty", lambda c: M().mifgsm(X[:0], c.model), ValueError, r"x is an empty batch", W),
    ("x-chw", lambda c: M().pgd(X[0], c.model), ValueError, r"x\[None\]", W),
    ("x-hwc", lambda c: M().pgd(X[0].permute(1, 2, 0), c.model), ValueError, r"x\.permute\(2, 0, 1\)\[None\]", W),
    ("x-nhwc", lambda c: M().pgd(X.permute(0, 2, 3, 1), c.model), ValueError, r"x\.permute\(0, 3, 1, 2\)", W),
    ("x-grey", lambda c: M().pgd(X[:, :1], c.model), ValueError, r"x\.expand\(-1, 3, -1, -1\)", W),
    ("x-numpy", lambda c: M().pgd(X.numpy(), c.model), TypeError, r"x must be a torch\.Tensor", W),
    ("targets-empty", lambda c: M().tip_im(X, TARGETS[:0], c.model), ValueError, r"targets is an empty batch", W),
    ("float16-protected", float16_is_converted_and_protected, OK, "", W),
    ("float64-same-as-float32", float64_is_converted_and_equals_float32, OK, "", W),
    ("model-call-float64", model_call_converts_float64, OK, "", W),
    ("model-call-uint8", lambda c: c.model((X * 255).byte()), ValueError, r"divide by 255", W),
    # --- parameters ---
    ("eps-nan", lambda c: M().pgd(X, c.model, eps=float("nan")), ValueError, r"eps must be a finite number", W),
    ("eps-negative", lambda c: M().mifgsm(X, c.model, eps=-8 / 255), ValueError, r"eps must be > 0.*8/255", W),
    ("eps-0-255-units", lambda c: M().mifgsm(X, c.model, eps=8), ValueError, r"0–255 units.*eps=8/255", W),
    ("eps-0-255-tip-im", lambda c: M().tip_im(X, TARGETS, c.model, eps=12), ValueError, r"eps=12/255", W),
    ("eps-0-255-ta", lambda c: M().targeted_anonymization_baseline(X, victim=c.model, authorized=c.other, eps=16),
     ValueError, r"eps=16/255", W),
    ("eps-l2-beyond-any-image", lambda c: M().pgd(X, c.model, norm="l2", eps=500.0), ValueError,
     r"larger than any L2 distance.*eps=500/255", W),
    ("alpha-nan", lambda c: M().pgd(X, c.model, alpha=float("nan")), ValueError, r"alpha must be a finite number", W),
    ("alpha-negative", lambda c: M().tip_im(X, TARGETS, c.model, alpha=-0.01), ValueError, r"alpha must be > 0", W),
    ("alpha-0-255-units", lambda c: M().tip_im(X, TARGETS, c.model, alpha=1.5), ValueError, r"alpha=1\.5/255", W),
    ("mifgsm-steps-0", lambda c: M().mifgsm(X, c.model, steps=0), ValueError, r"steps must be >= 1", W),
    ("ifgsm-steps-0", lambda c: M().ifgsm(X, c.model, steps=0), ValueError, r"steps must be >= 1", W),
    ("steps-float", lambda c: M().pgd(X, c.model, steps=2.0), TypeError, r"steps must be an int.*int\(2\.0\)", W),
    ("steps-bool", lambda c: M().tip_im(X, TARGETS, c.model, steps=True), TypeError, r"steps must be an int", W),
    ("n-0-ta", lambda c: M().targeted_anonymization(X, X, victim=c.model, authorized=c.other, n=0, th_old=0.3),
     ValueError, r"n must be >= 1", W),
    ("mu-negative", lambda c: M().mifgsm(X, c.model, mu=-1.0), ValueError, r"mu must be >= 0", W),
    ("gamma-nan", lambda c: M().tip_im(X, TARGETS, c.model, gamma=float("nan")), ValueError, r"gamma must be a finite", W),
    ("c-out-of-range", lambda c: M().targeted_anonymization(X, X, victim=c.model, authorized=c.other, c=1.5, th_old=0.3),
     ValueError, r"c must be in \[0, 1\].*Eq\. 4", W),
    ("d-negative", lambda c: M().targeted_anonymization_baseline(X, victim=c.model, authorized=c.other, d=-1),
     ValueError, r"d must be >= 0", W),
    ("far-zero", lambda c: M().targeted_anonymization(X, X, victim=c.model, authorized=c.other, far=0),
     ValueError, r"far must be in \(0, 1\)", W),
    ("ti-kernel-even", lambda c: M().mifgsm(X, c.model, ti_kernel=4), ValueError, r"ti_kernel must be odd.*3 or 5", W),
    ("diversity-prob", lambda c: M().mifgsm(X, c.model, diversity_prob=2.0), ValueError,
     r"diversity_prob must be in \[0, 1\]", W),
    ("mmd-batch-0", lambda c: M().tip_im(X, TARGETS, c.model, mmd_batch=0), ValueError, r"mmd_batch must be >= 1", W),
    ("bandwidths-empty", lambda c: M().tip_im(X, TARGETS, c.model, bandwidths=()), ValueError,
     r"bandwidths must be a non-empty", W),
    ("seed-string", lambda c: M().pgd(X, c.model, seed="0"), TypeError, r"seed must be an int", W),
    ("flag-string", lambda c: M().pgd(X, c.model, random_start="no"), TypeError,
     r"random_start must be True or False", W),
    # --- string options: typos list the valid values ---
    ("objective-typo", lambda c: M().pgd(X, c.model, objective="dodge"), ValueError,
     r"objective must be one of 'dodging', 'impersonation'.*did you mean 'dodging'", W),
    ("norm-typo", lambda c: M().pgd(X, c.model, norm="Linf"), ValueError, r"norm must be one of 'linf', 'l2'", W),
    ("gain-typo", lambda c: M().tip_im(X, TARGETS, c.model, gain="greedy"), ValueError,
     r"gain must be one of 'G', 'G1', 'G2', 'random', 'single'", W),
    ("threshold-from-typo", lambda c: M().targeted_anonymization(X, X, victim=c.model, authorized=c.other, th_old=0.3,
                                                                 threshold_from="clear"),
     ValueError, r"threshold_from must be one of 'clean', 'current'.*did you mean 'clean'", W),
    ("impersonation-without-target", lambda c: M().pgd(X, c.model, objective="impersonation"), ValueError,
     r"pass target=", W),
    # --- steps / history ---
    ("history-max-kept-0", lambda c: facelab.history(_steps(5), max_kept=0), ValueError, r"max_kept must be >= 1", ()),
    ("history-keep-every-0", lambda c: facelab.history(_steps(5), keep_every=0), ValueError,
     r"keep_every must be >= 1", ()),
    ("history-max-kept-1", history_max_kept_1_keeps_first_and_last, OK, "", ()),
    # --- metrics ---
    ("psnr-shapes", lambda c: facelab.metrics.psnr(X, X[:, :, :64]), ValueError, r"x and y must have the same shape", ()),
    ("psnr-nan", lambda c: facelab.metrics.psnr(with_pixel(float("nan")), X), ValueError, r"x contains 1 NaN", ()),
    ("ssim-even-window", lambda c: facelab.metrics.ssim(X, X, window_size=10), ValueError, r"window_size must be odd", ()),
    ("mmd-0-255", lambda c: facelab.metrics.mmd(X * 255, X), ValueError, r"x must have values in \[0,1\]", ()),
    ("far-above-1", lambda c: facelab.metrics.threshold_at_far([0.1, 0.2], 1.5), ValueError, r"far must be in \[0, 1\)", ()),
    ("scores-nan", lambda c: facelab.metrics.roc_auc([0.9, float("nan")], [0.1]), ValueError, r"1 NaN or infinite", ()),
    ("top-n-0", lambda c: facelab.metrics.top_n(np.ones((2, 3)), 0), ValueError, r"n must be >= 1", ()),
    # --- faces ---
    ("load-image-max-faces-0", lambda c: _load_image(max_faces=0), ValueError, r"max_faces must be >= 1", ()),
    ("load-image-min-score", lambda c: _load_image(min_score=1.5), ValueError, r"min_score must be in \[0, 1\]", ()),
    ("load-image-tiny-size", lambda c: _load_image(size=4), ValueError, r"crop size must be an integer of at least 8", ()),
    ("load-image-nan-landmarks", lambda c: _load_image(landmarks=np.full((5, 2), np.nan)), ValueError,
     r"landmarks contain NaN", ()),
    ("read-image-float-0-255", lambda c: facelab.faces.read_image(rand(8, 8, 3).numpy() * 255), ValueError,
     r"divide 0\.\.255 data by 255", ()),
    ("paste-back-crop-0-255", lambda c: _paste(rand(3, 112, 112) * 255), ValueError,
     r"crop must have values in \[0,1\].*crop / 255", ()),
    ("paste-back-crop-nan", lambda c: _paste(with_pixel(float("nan"))[0]), ValueError, r"crop contains 1 NaN", ()),
    ("paste-back-mask-typo", lambda c: facelab.faces.blend_mask(112, shape="elipse"), ValueError,
     r"did you mean 'ellipse'", ()),
    # --- caches ---
    ("damaged-weights-refused", damaged_weights_refused_at_load, DamagedCacheError,
     r"model\.bin is damaged.*run `facelab fetch`", ()),
    ("fetch-repairs-damage", fetch_repairs_damaged_weights, OK, "", ()),
    ("fetch-verify", fetch_verify_finds_damage_behind_a_restored_mtime, OK, "", ()),
    ("touched-file-loads", touched_but_intact_file_still_loads, OK, "", ()),
    ("damaged-real-weights", damaged_real_weights_refused_at_load, DamagedCacheError,
     r"mobileface\.bin is damaged.*facelab fetch", W),
    ("npz-truncated", truncated_npz_is_rebuilt, OK, "", ()),
    ("npz-corrupted", corrupted_npz_member_is_rebuilt, OK, "", ()),
    ("cache-write-interrupted", interrupted_cache_write_leaves_the_old_file, OK, "", ()),
    ("cache-is-a-file", cache_is_a_file, NotADirectoryError, r"FACELAB_CACHE=.*is a file.*point FACELAB_CACHE at a folder",
     ()),
    ("thresholds-json-corrupt", corrupt_thresholds_json, ValueError, r"thresholds\.json is not valid JSON", ()),
    # --- CLI ---
    ("cli-calibrate-out-user-file", calibrate_out_existing_user_file, CLI, r"package\.json exists.*--force", ()),
    ("cli-calibrate-out-folder", calibrate_out_folder, CLI, r"is a folder", ()),
    ("cli-calibrate-updates-own-file", calibrate_updates_its_own_file_and_force_replaces_a_user_file, OK, "", W),
    ("cli-calibrate-bogus-model", lambda c: c.cli("calibrate", "--models", "bogus"), CLI,
     r"unknown model\(s\) 'bogus'.*available: .*mobileface", ()),
    ("cli-calibrate-min-faces-0", lambda c: c.cli("calibrate", "--data", "lfw", "--min-faces", "0"), CLI,
     r"--min-faces must be >= 1", ()),
    ("cli-unknown-option", lambda c: c.cli("fetch", "--bogus"), CLI, r"unrecognized arguments: --bogus", ()),
    ("cli-bad-choice", lambda c: c.cli("calibrate", "--data", "web"), CLI, r"invalid choice: 'web'", ()),
    ("cli-cache-is-a-file", cli_with_cache_a_file, CLI, r"facelab fetch: .*is a file", ()),
    ("cli-damaged-cache", cli_damaged_cache_at_calibrate, CLI, r"facelab calibrate: .*mobileface\.bin is damaged", W),
]


@pytest.mark.parametrize(
    "call, expected, match",
    [pytest.param(call, expected, match, id=name, marks=marks) for name, call, expected, match, marks in CASES],
)
def test_bad_input(call, expected, match, tmp_path, monkeypatch, capsys, request):
    ctx = Ctx(tmp_path, monkeypatch, capsys, request)
    with _no_hang(seconds=120):  # history(max_kept=0) used to loop forever
        _check(ctx, call, expected, match)


@contextmanager
def _no_hang(seconds: int):
    def stop(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: this input makes facelab hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _check(ctx: Ctx, call, expected, match) -> None:
    if expected is OK:
        assert call(ctx) is OK
    elif expected is CLI:
        rc, err = call(ctx)
        assert rc == 1 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, f"not one line: {err!r}"
        assert re.search(match, err), err
    else:
        with pytest.raises(expected, match=match) as info:
            call(ctx)
        assert type(info.value) is expected, f"{type(info.value).__name__} is not exactly {expected.__name__}"


def test_the_table_is_large_enough_and_names_are_unique():
    names = [c[0] for c in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)
