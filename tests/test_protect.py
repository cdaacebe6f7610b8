"""facelab.protect and `facelab protect`: whole photos, every face, in the photo's own pixels.

The invariants checked on real photos (the scikit-image astronaut, real MTCNN
and real pretrained models): pixels outside the faces' footprints are
bit-identical, face pixels move by at most ε, the saved photo carries no
metadata, and the re-detected face is no longer matched by the attacked model.
"""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import facelab
from facelab.cli import main
from facelab.faces import similarity_transform, warp_crop
from facelab.faces.view import RegionView, face_region, footprint, warp_region
from facelab.photo import read_photo
from facelab.protection import ProtectError, levels_of

FAST = dict(models=("mobileface",), pool=("mobileface",), steps=10, jpeg_quality=None)
# landmarks of the astronaut's face (as MTCNN finds them), for tests that need no detector
ASTRONAUT_LM = np.array([[205.0, 101.7], [246.8, 103.7], [224.7, 129.0], [201.7, 139.2], [245.3, 141.9]])


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(int) != b.astype(int)).any(axis=2)


def _footprints(result, shape) -> np.ndarray:
    """Union of the rectangles protect was allowed to touch (a superset of the footprints)."""
    m = np.zeros(shape, bool)
    for f in result.report.faces:
        x0, y0, x1, y1 = f.region
        m[y0:y1, x0:x1] = True
    return m


# -- the view: no weights needed ---------------------------------------------------


@pytest.mark.parametrize("zoom", [1, 3])
def test_region_view_sees_the_crop_load_image_aligns(astronaut, zoom):
    img = np.kron(astronaut, np.ones((zoom, zoom, 1), np.uint8)) if zoom > 1 else astronaut
    lm = (ASTRONAUT_LM + 0.5) * zoom - 0.5
    region = face_region(lm, img.shape[:2], (112, 160))
    photo = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    x = photo[None, :, region.y0:region.y1, region.x0:region.x1]
    for size in (112, 160):
        ref = warp_crop(photo, similarity_transform(lm, size, img.shape[:2]))
        assert torch.allclose(warp_region(x, region.transform(size))[0], ref, atol=1e-4)


def test_region_shape_never_equals_a_crop_shape():
    # a face whose crop corners span exactly 112 px is widened by one column
    for s in range(100, 130):
        lm = ASTRONAUT_LM * s / 100.0
        r = face_region(lm, (2000, 2000), (112, 160))
        assert r.shape not in {(112, 112), (160, 160)}


def test_footprint_is_where_gradients_reach(astronaut):
    region = face_region(ASTRONAUT_LM, astronaut.shape[:2], (112,))

    class Mean(torch.nn.Module):
        input_size = 112
        name = "mean"

        def forward(self, x):
            return x.flatten(1)

    view = RegionView(Mean(), region)
    mask = footprint([view], region)
    x = torch.rand(1, 3, *region.shape, requires_grad=True)
    (g,) = torch.autograd.grad((view(x) * torch.rand(1, 3 * 112 * 112)).sum(), x)
    reached = g.abs().sum(1, keepdim=True) > 0
    assert bool((reached <= mask).all()) and bool(mask.any())
    assert not bool(mask.all())  # the rotated crop leaves the region's corners alone


def test_levels_and_unknown_method(astronaut):
    assert levels_of(8 / 255) == 8 and levels_of(0.05) == 12
    with pytest.raises(ProtectError, match="below one 8-bit level"):
        levels_of(0.5 / 255)
    with pytest.raises(ProtectError, match="unknown method 'nope'"):
        facelab.protect(astronaut, "nope")


# -- protect on real weights -----------------------------------------------------


@pytest.mark.weights
def test_one_face_png_round_trip(astronaut, tmp_path):
    src = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(src)
    res = facelab.protect(src, "mifgsm", eps=8 / 255, recheck=False, **{**FAST, "jpeg_quality": 95})
    out = res.save(tmp_path / "protected.png")
    saved = np.asarray(Image.open(out))
    assert saved.shape == astronaut.shape and saved.dtype == np.uint8
    diff = np.abs(saved.astype(int) - astronaut.astype(int))
    touched = _footprints(res, astronaut.shape[:2])
    assert not _changed(saved, astronaut)[~touched].any()  # bit-identical outside the faces
    assert diff.max() <= 8 and diff.max() >= 1  # within ε, and something changed
    assert res.report.faces[0].max_change == diff.max()
    (face,) = res.report.faces
    (s,) = face.scores
    assert face.redetected and s.recheck is not None  # re-read from the saved file
    assert s.before >= s.threshold > s.after
    assert s.recheck < s.threshold, "the re-detected face is still matched by the attacked model"
    assert s.jpeg is not None and res.report.jpeg_quality == 95
    assert "mobileface" in res.report.table() and "re-check" in res.report.table()
    with Image.open(out) as im:
        assert not im.getexif() and "exif" not in im.info
    with pytest.raises(FileExistsError, match="never overwrites"):
        res.save(out)


@pytest.mark.weights
def test_multi_face_every_face_protected(astronaut):
    group = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # two faces side by side
    res = facelab.protect(group, "mifgsm", **FAST)
    assert len(res.report.faces) == 2 and res.report.faces_found == 2
    changed = _changed(res.image, group)
    assert changed[:, :512].any() and changed[:, 512:].any()
    assert not changed[~_footprints(res, group.shape[:2])].any()
    assert all(f.scores[0].recheck < f.scores[0].threshold for f in res.report.faces)
    largest = facelab.protect(group, "mifgsm", faces="largest", recheck=False, **{**FAST, "steps": 1})
    assert len(largest.report.faces) == 1


@pytest.mark.weights
def test_exif_rotated_photo_keeps_orientation_and_drops_exif(astronaut, tmp_path):
    stored = np.ascontiguousarray(np.rot90(astronaut, 1))  # what the camera stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to view (undoes the counter-clockwise rot90)
    exif[0x010F] = "TestCam"
    src = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(src, quality=98, exif=exif)
    shown = read_photo(src).rgb  # what a viewer shows
    assert shown.shape == astronaut.shape and np.abs(shown.astype(int) - astronaut).mean() < 3
    res = facelab.protect(src, "mifgsm", recheck=False, **FAST)
    out = res.save(tmp_path / "rotated-protected.png")
    saved = np.asarray(Image.open(out))
    assert saved.shape == shown.shape  # upright, with no tag left to rotate it again
    assert not _changed(saved, shown)[~_footprints(res, shown.shape[:2])].any()
    assert np.abs(saved.astype(int) - shown.astype(int)).max() <= 8
    with Image.open(out) as im:
        assert not im.getexif()
    assert res.report.faces[0].scores[0].recheck < res.report.faces[0].scores[0].threshold


@pytest.mark.weights
def test_rgba_photo_keeps_its_alpha(astronaut, tmp_path):
    alpha = np.full(astronaut.shape[:2], 255, np.uint8)
    alpha[:, 400:] = 0  # a transparent strip away from the face
    alpha[400:, :] = 128
    rgba = np.dstack([astronaut, alpha])
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(src)
    res = facelab.protect(src, "mifgsm", recheck=False, **FAST)
    out = res.save(tmp_path / "rgba-protected.png")
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        saved = np.asarray(im)
    assert np.array_equal(saved[..., 3], alpha)
    assert not _changed(saved[..., :3], astronaut)[~_footprints(res, alpha.shape)].any()
    assert np.abs(saved[..., :3].astype(int) - astronaut.astype(int)).max() <= 8
    assert res.report.faces[0].scores[0].recheck < res.report.faces[0].scores[0].threshold


@pytest.mark.weights
def test_tip_im_runs_on_the_default_targets(astronaut):
    res = facelab.protect(astronaut, "tip_im", steps=4, **{k: v for k, v in FAST.items() if k != "steps"})
    d = np.abs(res.image.astype(int) - astronaut.astype(int))
    assert 1 <= d.max() <= 8
    assert res.report.faces[0].scores[0].after < res.report.faces[0].scores[0].before


@pytest.mark.weights
def test_targeted_anonymization_needs_its_inputs(astronaut):
    with pytest.raises(ProtectError, match="user_images"):
        facelab.protect(astronaut, "targeted_anonymization", **FAST)


# -- the command line --------------------------------------------------------------


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facelab protect:") and len(err.splitlines()) == 1, err
    return err


def test_cli_errors_are_one_line(tmp_path, capsys, astronaut):
    photo = tmp_path / "a.png"
    Image.fromarray(astronaut).save(photo)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep me")
    assert "already exists" in _one_line_error(capsys, ["protect", str(photo), "-o", str(existing)])
    assert existing.read_bytes() == b"keep me"
    assert "is one of the inputs" in _one_line_error(capsys, ["protect", str(photo), "-o", str(photo)])
    assert "unknown method" in _one_line_error(capsys, ["protect", str(photo), "-o", str(tmp_path / "o.png"),
                                                        "--method", "nope"])
    assert "no such file" in _one_line_error(capsys, ["protect", str(tmp_path / "missing.png"), "-o",
                                                      str(tmp_path / "o.png")])
    assert "not an image file" in _one_line_error(capsys, ["protect", str(junk), "-o", str(tmp_path / "o.png")])
    assert ".png" in _one_line_error(capsys, ["protect", str(photo), "-o", str(tmp_path / "o.gif")])
    assert "not a torch device" in _one_line_error(capsys, ["protect", str(photo), "-o", str(tmp_path / "o.png"),
                                                            "--device", "gpu0"])
    if not torch.cuda.is_available():
        assert "no CUDA device" in _one_line_error(capsys, ["protect", str(photo), "-o", str(tmp_path / "o.png"),
                                                            "--device", "cuda"])
    assert not (tmp_path / "o.png").exists()


@pytest.mark.weights
def test_cli_no_face_and_missing_inputs(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((240, 320, 3), 127, np.uint8)).save(blank)
    assert "no face was found" in _one_line_error(capsys, ["protect", str(blank), "-o", str(tmp_path / "o.png")])
    Image.fromarray(data.astronaut()).save(tmp_path / "a.png")
    err = _one_line_error(capsys, ["protect", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"),
                                   "--method", "targeted_anonymization", "--no-progress"])
    assert "user_images" in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.weights
def test_cli_writes_jpeg_and_reports(tmp_path, capsys, astronaut):
    photo = tmp_path / "a.png"
    Image.fromarray(astronaut).save(photo)
    out = tmp_path / "a.jpg"
    assert main(["protect", str(photo), "-o", str(out), "--models", "mobileface", "--steps", "5",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "mobileface *" in text and "re-check" in text and "JPEG q95" in text
    with Image.open(out) as im:
        assert im.format == "JPEG" and not im.getexif()


def test_version():
    out = subprocess.run([sys.executable, "-m", "facelab.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"facelab {facelab.__version__}"


def test_command_exit_status_and_streams_survive_the_fast_exit(tmp_path):
    """The ``facelab`` command leaves through os._exit (no interpreter teardown): its status and
    its buffered output must still arrive."""
    missing = tmp_path / "missing.png"
    out = subprocess.run([sys.executable, "-m", "facelab.cli", "protect", str(missing), "-o", str(tmp_path / "o.png")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == f"facelab protect: input {missing}: no such file"


@pytest.mark.weights
def test_command_output_survives_the_fast_exit(tmp_path, astronaut):
    photo = tmp_path / "in.png"
    Image.fromarray(astronaut).save(photo)
    ok = subprocess.run([sys.executable, "-m", "facelab.cli", "protect", str(photo), "-o", str(tmp_path / "o.png"),
                         "--models", "mobileface", "--steps", "1", "--no-progress"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("re-detected and re-aligned every face") and "mobileface *" in ok.stdout


def test_run_and_history_show_progress(capsys):
    from facelab import Step

    def steps():
        for i in range(4):
            yield Step(i, torch.zeros(1, 3, 2, 2), {"loss": torch.tensor(float(i))})

    assert facelab.run(steps(), progress=True, total=4).i == 3
    err = capsys.readouterr().err
    assert "/4 [" in err, err  # a tqdm bar with a known end (it clears itself when done)
    first_gen = steps()
    first = next(first_gen)
    hist = facelab.history(first_gen, progress="demo", first=first)
    assert hist.iterations == [0, 1, 2, 3] and hist.steps[0].i == 0  # step 0 kept in front
    assert "demo" in capsys.readouterr().err


def test_recipes_read_the_registry():
    """Each recipe is a registered method: its iteration parameter, default and budget come from there."""
    from facelab.methods import get
    from facelab.protection import BASELINE_ALPHA_PER_STEP, RECIPES

    expected = {"fgsm": (None, None, True), "ifgsm": ("steps", 10, True), "pgd": ("steps", 10, True),
                "mifgsm": ("steps", 10, True), "tip_im": ("steps", 50, True), "targeted_anonymization": ("n", 20, True),
                "pmask": ("max_steps", 200, False), "pmt": ("steps", 200, False)}
    assert {n: (r.steps_key, r.default_steps, r.takes_eps) for n, r in RECIPES.items()} == expected
    assert all(r.info is get(n) for n, r in RECIPES.items())
    assert RECIPES["targeted_anonymization"].wrapped == ("authorized",)
    assert RECIPES["mifgsm"].alpha_per_step == BASELINE_ALPHA_PER_STEP == 2.0 and RECIPES["pgd"].alpha_per_step is None


def test_a_recipe_calls_its_method_with_the_photo_step_and_wrapped_models():
    from facelab.methods import mifgsm
    from facelab.models.synthetic import synthetic_model
    from facelab.protection import RECIPES

    model, authorized = synthetic_model(seed=1), synthetic_model("authorized", seed=3)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen = []
    wrap = lambda m: seen.append(m) or m  # noqa: E731
    steps = list(RECIPES["mifgsm"].call(x, [model], wrap, {"eps": 8 / 255, "steps": 4}))
    direct = list(mifgsm(x, [model], eps=8 / 255, steps=4, alpha=2 * (8 / 255) / 4))
    assert torch.equal(steps[-1].x, direct[-1].x) and seen == []
    user = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    list(RECIPES["targeted_anonymization"].call(x, [model], wrap, {"eps": 8 / 255, "n": 2, "user_images": user,
                                                                   "authorized": authorized}))
    assert seen == [authorized]
