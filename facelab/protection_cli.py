"""`facelab protect IN [IN …] -o OUT`: the command-line face of :func:`facelab.protect`.

An input may be a folder: its .png/.jpg/.jpeg files (sorted by name, not its sub-folders).  With
several photos the command runs :func:`facelab.protection.protect_many`, ``--batch`` faces per
attack; a photo that fails (unreadable, no face) is reported and the others are still protected.

Kept apart from :mod:`facelab.protection` so ``facelab --help`` does not import torch.
"""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

SUFFIXES = (".png", ".jpg", ".jpeg")


def parse_eps(text: str) -> float:
    """``8`` or ``8/255`` → 8/255 (8-bit levels); ``0.03`` → 0.03 (the [0,1] scale)."""
    try:
        v = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"--eps {text!r}: give 8-bit levels (8), a fraction (8/255) or a value below 1") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"--eps must be positive, got {text}")
    return v / 255.0 if v >= 1 else v


def add_parser(sub) -> None:
    p = sub.add_parser(
        "protect",
        help="protect every face of a photo against the chosen face-recognition models",
        description="Write a protected copy of each photo (PNG, or JPEG with --quality) and print how each "
                    "model of the pool scores every face before and after, re-read from the saved file.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="photo file(s) or folder(s) (every .png/.jpg/.jpeg directly inside, sorted by name)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (.png or .jpg) for one photo, or an existing folder (one <name>-protected.png "
                        "per photo); never overwritten")
    p.add_argument("--method", default="mifgsm", help="protection method (default mifgsm): fgsm, ifgsm, pgd, mifgsm, pmask, pmt, "
                                                      "tip_im, targeted_anonymization")
    p.add_argument("--eps", type=parse_eps, default=8 / 255, help="L-inf budget: 8 or 8/255 (8-bit levels, default) "
                                                                  "or a value below 1 on the [0,1] scale")
    p.add_argument("--faces", default="all", choices=["all", "largest"], help="which faces to protect (default all)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="models to attack (default facenet-casia); the report scores every cached model")
    p.add_argument("--steps", type=int, default=None, help="iterations (default: the method's own)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality when OUT ends in .jpg (default 95)")
    p.add_argument("--far", type=float, default=0.01, help="false-accept rate of the report's thresholds")
    p.add_argument("--targets", nargs="+", default=None, metavar="PHOTO",
                   help="tip_im: photos of the target identities (default: five faces of the offline set)")
    p.add_argument("--user-photos", nargs="+", default=None, metavar="PHOTO",
                   help="targeted_anonymization: photos of the same person (the paper uses four)")
    p.add_argument("--authorized", default=None, metavar="NAME",
                   help="targeted_anonymization: the model that should still recognise you")
    p.add_argument("--batch", type=_batch, default=8, metavar="N",
                   help="faces attacked together in one batch when protecting several photos (default 8; "
                        "more is faster per face and takes more memory; only fgsm, ifgsm, pgd and mifgsm batch, "
                        "other methods go one face at a time)")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="where the models run: cpu, cuda or cuda:N (default: cuda when torch sees a GPU, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=command)


def _batch(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--batch must be a whole number >= 1, got {text!r}")
    return n


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Each folder replaced by its photos (.png/.jpg/.jpeg, any case, sorted by name, not recursive);
    files are kept as given.  A folder without a photo is an error."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            photos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not photos:
                raise ValueError(f"input folder {p} holds no .png/.jpg/.jpeg photo")
            out += photos
        else:
            out.append(p)
    return out


def _outputs(inputs: list[Path], out: Path) -> list[Path]:
    if out.is_dir():
        names = [out / f"{i.stem}-protected.png" for i in inputs]
        if len({n.name for n in names}) < len(names):
            raise ValueError("two inputs share a file name; protect them into different folders")
        return names
    if len(inputs) > 1:
        raise ValueError(f"-o {out}: with several inputs OUT must be an existing folder")
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"-o {out}: end the name in .png (lossless) or .jpg, or give an existing folder")
    return [out]


def command(args: argparse.Namespace) -> int:
    try:
        inputs = expand_inputs([Path(p) for p in args.inputs])
        outputs = _outputs(inputs, Path(args.output))
        resolved = {i.resolve() for i in inputs}
        for o in outputs:
            if o.resolve() in resolved:
                raise ValueError(f"-o {o} is one of the inputs; facelab never overwrites a photo")
            if o.exists():
                raise ValueError(f"output {o} already exists; facelab never overwrites a file: choose a new name")
            if not o.parent.is_dir():
                raise ValueError(f"output folder {o.parent} does not exist")
        for i in inputs:
            if not i.is_file():
                raise ValueError(f"input {i}: no such file")
    except ValueError as exc:
        print(f"facelab protect: {exc}", file=sys.stderr)
        return 1

    from .cache import MissingCacheError
    from .faces.io import ImageReadError, NoFaceError
    from .protection import DEFAULT_MODELS, RECIPES, ProtectError, protect, protect_many

    if args.method not in RECIPES:
        print(f"facelab protect: unknown method {args.method!r}; choose from {', '.join(RECIPES)}", file=sys.stderr)
        return 1
    params = {}
    if args.steps is not None:
        key = RECIPES[args.method].steps_key
        if key is None:
            print(f"facelab protect: {args.method} takes no --steps", file=sys.stderr)
            return 1
        params[key] = args.steps
    if args.targets:
        params["targets"] = args.targets
    if args.user_photos:
        params["user_images"] = args.user_photos
    if args.authorized:
        params["authorized"] = args.authorized
    if args.method == "targeted_anonymization":
        params.setdefault("user_images", None)
        params.setdefault("authorized", None)

    device = getattr(args, "device", None)
    if device is not None:
        import torch

        try:
            dev = torch.device(device)
        except RuntimeError:
            print(f"facelab protect: --device {device!r}: not a torch device (cpu, cuda, cuda:N)", file=sys.stderr)
            return 1
        if dev.type == "cuda" and not torch.cuda.is_available():
            print(f"facelab protect: --device {device}: torch sees no CUDA device here; use --device cpu",
                  file=sys.stderr)
            return 1
    options = dict(models=args.models or DEFAULT_MODELS, eps=args.eps, faces=args.faces, far=args.far, recheck=False,
                   jpeg_quality=None, device=device, **params)
    errors = (ProtectError, NoFaceError, ImageReadError, FileNotFoundError, FileExistsError, MissingCacheError,
              ValueError)
    if len(inputs) == 1:
        def results():
            try:
                yield protect(inputs[0], args.method, progress=not args.no_progress, **options)
            except errors as exc:
                yield exc
    else:
        try:
            many = protect_many(inputs, args.method, batch_size=args.batch, progress=not args.no_progress,
                                **options)
        except errors as exc:  # the request itself (method inputs, models): nothing can run
            print(f"facelab protect: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1

        def results():
            for r in many:
                yield r.error if not r.ok else r

    status = 0
    for src, dst, result in zip(inputs, outputs, results()):
        jpeg_out = dst.suffix.lower() != ".png"
        try:
            if isinstance(result, Exception):  # this photo failed (protect_many went on with the others)
                raise result
            result.save(dst, quality=args.quality, jpeg_quality=None if jpeg_out else args.quality)
        except (*errors, OSError, TypeError) as exc:
            print(f"facelab protect: {src}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                  file=sys.stderr)
            status = 1
            continue
        print(result.report.table())
        print(f"wrote {dst} ({'JPEG q%d' % args.quality if jpeg_out else 'PNG'}, no metadata); the re-check "
              "column re-read it, re-detected and re-aligned every face")
    return status
