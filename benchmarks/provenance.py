"""Where every committed benchmark result came from, and a check that it still matches.

``benchmarks/results/provenance.json`` holds one record per suite: the command line that ran,
the git commit it ran on (and which of its inputs had uncommitted changes), the UTC time, the
sha256 of every input file and of every output file, and the seeds when a caller passes them.
:func:`check` compares that record with the tree as it is now and names, for each problem, the
command that makes the table true again:

* no record for a results file that exists;
* an **input** whose sha256 differs from the record: the table is stale;
* an **output** whose sha256 differs from the record: the table was edited by hand, or by a run
  that did not record (a smoke run, a run into another ``--out``, an older checkout);
* a file in ``benchmarks/results/`` that no suite declares.

``python -m benchmarks SUITE`` records after the suite returns (not in ``FACELAB_FAST=1`` smoke
runs, not in ``--quick`` runs, not when ``--out`` is elsewhere), and so do the stand-alone parts
(``python -m benchmarks.pmask render``, ``python -m benchmarks.tip_im --part cost`` …).

**What counts as an input.** The files a table's numbers depend on *directly*: the benchmark
module and :mod:`benchmarks.timing` (its statistics and table format), the method module(s) and
the :mod:`facelab.ops` building blocks they call, the experiment module, the metrics its claims
use, the face set's data (``facelab/faces/manifest.json``, the photo pins in
``facelab/faces/packages.py``) and the code that turns photos into crops, the model weight pins
(``facelab/models/packages.py``), the calibrated thresholds (``facelab/models/thresholds.json``)
and the pins in ``requirements-lock.txt`` of the packages that compute (:data:`NUMERIC_PACKAGES` and
what they pull in: :func:`lock_pins`).  Files every result depends on only through the plumbing
(``facelab/steps.py``, ``facelab/validate.py``, ``facelab/__init__.py``, the viz helpers, the graph
interpreters behind the pinned weights, which their parity tests pin to reference outputs) are
left out: with them every table would go stale at every commit, and a check that always fails is
as useless as one that never does.  The exceptions are the suites whose subject *is* that plumbing:
``overhead`` (the stepwise generator: ``facelab/steps.py``, ``facelab/validate.py``) and ``models``
(forward time: the graph interpreters).

A run's commit is HEAD when its process started; an input saved while the run was going (the working
tree is shared) is recorded as unknown, so the table shows as stale rather than vouched for.
``python -m benchmarks.provenance stamp`` records a suite without running it, only when git history
shows that no input changed after the commit that wrote its outputs (see :func:`stamp`).

A result made from code that is unchanged but whose inputs list grew later (a file added to
:data:`SUITES`) is reported as stale too: the record cannot vouch for a file it never hashed.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .seeds import SEEDED
from .seeds import chosen as chosen_seeds

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results"
RECORD = f"{RESULTS}/provenance.json"


@dataclass(frozen=True)
class Suite:
    """``outputs`` and ``inputs`` are paths relative to the repository root.  ``render_inputs``: the
    inputs a re-render from the raw JSON reads (its wording code); a re-render refreshes only
    those, so a change to the method still shows the table as stale."""

    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    command: str
    render_inputs: tuple[str, ...] = ()


def _files(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({p for g in groups for p in g}))


# the lock's pins of the packages that compute the numbers and everything they pull in (a docs or test tool
# added to the lock moves no number); "path#selector" inputs are hashed through SELECTORS
LOCK = ("requirements-lock.txt#numeric",)
NUMERIC_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pillow", "scikit-image", "scikit-learn", "kornia", "av",
                    "torchattacks")
WEIGHTS = ("facelab/models/packages.py",)
THRESHOLDS = ("facelab/models/thresholds.json",)
FACES = ("facelab/faces/manifest.json", "facelab/faces/packages.py", "facelab/faces/offline.py",
         "facelab/faces/align.py", "facelab/faces/detect.py", "facelab/faces/mtcnn.py", "facelab/faces/io.py")
TIMING = ("benchmarks/timing.py", "facelab/evaluation/tables.py")  # its pages render through evaluation.Table
OPS = {name: f"facelab/ops/{name}.py" for name in
       ("augment", "budget", "diversity", "identity", "mmd", "momentum", "smoothing")}
BASELINES = ("facelab/methods/baselines.py", "facelab/methods/kit.py", *OPS.values())
TIP_IM = ("facelab/methods/tip_im.py", "facelab/methods/kit.py", *(OPS[n] for n in ("augment", "budget", "diversity", "identity", "mmd",
                                                         "momentum")))
MODEL_FORWARD = tuple(f"facelab/models/{n}.py" for n in ("zoo", "specs", "graph", "tfjs_graph", "graphdef",
                                                          "onnx_graph", "faceapi", "online"))
CLAIMS = ("facelab/metrics/claims.py",)
EVALUATION = tuple(f"facelab/evaluation/{n}.py" for n in ("__init__", "embeddings", "tables", "thresholds"))
QUALITY = ("facelab/metrics/quality.py",)
EM = tuple(f"facelab/methods/erasable_mask/{n}.py" for n in ("checkpoint", "data", "evaluate", "losses", "model",
                                                            "nets", "train"))

# the code that words a page from its JSON (a re-render reads only this)
PMASK_PAGE = ("facelab/experiments/pmask_claims.py", "facelab/experiments/pmask_report.py")
TA_PAGE = ("facelab/experiments/targeted_anonymization_claims.py",
           "facelab/experiments/targeted_anonymization_report.py")

SUITES: dict[str, Suite] = {
    "models": Suite(
        outputs=(f"{RESULTS}/models.md",),
        inputs=_files(("benchmarks/models.py",), TIMING, MODEL_FORWARD, FACES, WEIGHTS, LOCK),  # faces: the cosine column
        command="python -m benchmarks models"),
    "overhead": Suite(
        outputs=(f"{RESULTS}/overhead.md",),
        inputs=_files(("benchmarks/overhead.py", "facelab/steps.py", "facelab/validate.py", "facelab/models/zoo.py"),
                      TIMING, BASELINES, WEIGHTS, LOCK),
        command="python -m benchmarks overhead --threads 1"),
    "faces": Suite(
        outputs=(f"{RESULTS}/faces.md",),
        inputs=_files(("benchmarks/faces.py", "facelab/cache.py"), TIMING, FACES, WEIGHTS, LOCK),
        command="python -m benchmarks faces"),
    "tip_im_cost": Suite(
        outputs=(f"{RESULTS}/tip_im_cost.md",),
        inputs=_files(("benchmarks/tip_im.py",), TIMING, TIP_IM, WEIGHTS, LOCK),
        command="python -m benchmarks.tip_im --part cost"),
    "tip_im": Suite(
        outputs=(f"{RESULTS}/tip_im.md", f"{RESULTS}/tip_im_full.md", f"{RESULTS}/tip_im.json"),
        inputs=_files(("benchmarks/tip_im.py", "benchmarks/seeds.py", "facelab/experiments/tip_im.py",
                       "facelab/metrics/identification.py",
                       "facelab/experiments/tip_im_claims.py", "facelab/experiments/tip_im_report.py"),
                      TIMING, TIP_IM, CLAIMS, EVALUATION, QUALITY, FACES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks.tip_im --part claims"),
    "targeted_anonymization": Suite(
        outputs=(f"{RESULTS}/targeted_anonymization.md", f"{RESULTS}/targeted_anonymization.json"),
        inputs=_files(("benchmarks/targeted_anonymization.py", "facelab/methods/targeted_anonymization.py",
                       "facelab/methods/kit.py", "facelab/experiments/targeted_anonymization.py",
                       "facelab/experiments/targeted_anonymization_claims.py",
                       "facelab/experiments/targeted_anonymization_report.py", "facelab/models/calibration.py",
                       "facelab/evaluation/calibration.py", "facelab/metrics/verification.py"),
                      (OPS[n] for n in ("budget", "diversity", "identity", "momentum")),
                      TIMING, CLAIMS, EVALUATION, FACES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks targeted_anonymization",
        render_inputs=("benchmarks/targeted_anonymization.py", *TA_PAGE, *CLAIMS, "facelab/evaluation/tables.py")),
    "erasable_mask": Suite(
        outputs=(f"{RESULTS}/erasable_mask.md", f"{RESULTS}/erasable_mask.json"),
        inputs=_files(("benchmarks/erasable_mask.py", "facelab/models/attributes.py", "facelab/experiments/erasable_mask.py",
                       "facelab/experiments/erasable_mask_claims.py", "facelab/experiments/erasable_mask_report.py"),
                      EM, BASELINES, TIMING, CLAIMS,
                      QUALITY, FACES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks erasable_mask --threads 1"),
    "pmask": Suite(
        outputs=(f"{RESULTS}/pmask.md", f"{RESULTS}/pmask.json"),
        inputs=_files(("benchmarks/pmask.py", "benchmarks/seeds.py", "facelab/methods/pmask.py", "facelab/methods/fawkes.py",
                       "facelab/experiments/pmask.py", "facelab/metrics/diversity.py"), PMASK_PAGE,
                      TIP_IM, TIMING, CLAIMS, EVALUATION, QUALITY, FACES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks pmask --threads 2",
        render_inputs=("benchmarks/pmask.py", "benchmarks/seeds.py", *PMASK_PAGE, *CLAIMS, "facelab/evaluation/tables.py")),
    "pmt": Suite(
        outputs=(f"{RESULTS}/pmt.md", f"{RESULTS}/pmt.json"),
        inputs=_files(("benchmarks/pmt.py", "benchmarks/seeds.py", "facelab/methods/pmt.py", "facelab/methods/recface.py",
                       "facelab/methods/reconstruction.py", "facelab/experiments/pmt.py", "facelab/metrics/privacy.py",
                       "facelab/models/shallow.py", "facelab/models/attributes.py", OPS["smoothing"],
                       "facelab/experiments/pmt_claims.py", "facelab/experiments/pmt_report.py"),
                      TIMING, CLAIMS, EVALUATION, QUALITY, FACES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks pmt --threads 2"),
    "protect": Suite(
        outputs=(f"{RESULTS}/protect.md",),
        inputs=_files(("benchmarks/protect.py", "benchmarks/memory.py", "facelab/protection.py", "facelab/protection_report.py",
                       "facelab/protection_cli.py", "facelab/photo.py",
                       "facelab/methods/registry.py",
                       "facelab/jpeg.py", "facelab/faces/view.py", "facelab/faces/align.py", "facelab/faces/detect.py",
                       "facelab/faces/mtcnn.py", "facelab/faces/io.py"), TIMING, BASELINES, WEIGHTS, THRESHOLDS, LOCK),
        command="python -m benchmarks protect --threads 2"),
    "cost": Suite(
        outputs=(f"{RESULTS}/cost.md",),
        inputs=_files(("benchmarks/cost.py", "benchmarks/memory.py", "facelab/methods/registry.py", "facelab/methods/targeted_anonymization.py",
                       "facelab/methods/pmask.py", "facelab/methods/fawkes.py", "facelab/methods/pmt.py",
                       "facelab/methods/reconstruction.py", "facelab/methods/erasable_mask/method.py",
                       "facelab/models/shallow.py"),
                      BASELINES, TIP_IM, EM, MODEL_FORWARD, TIMING, FACES, WEIGHTS, LOCK),
        command="python -m benchmarks cost --threads 2"),
}

# which records a run writes: (benchmark, part) -> suites; part "all" is `python -m benchmarks NAME`
PARTS: dict[tuple[str, str], tuple[str, ...]] = {
    **{(name, "all"): (name,) for name in ("models", "overhead", "faces", "targeted_anonymization", "erasable_mask",
                                           "pmask", "pmt", "protect", "cost")},
    ("tip_im", "all"): ("tip_im_cost", "tip_im"),
    ("tip_im", "cost"): ("tip_im_cost",),
    ("tip_im", "claims"): ("tip_im",),
}
RENDER_PARTS = {("pmask", "render"): ("pmask",), ("targeted_anonymization", "render"): ("targeted_anonymization",)}


@dataclass(frozen=True)
class Problem:
    suite: str | None
    kind: str  # "no record" | "stale input" | "edited output" | "missing output" | "missing input" | "unknown file"
    path: str | None
    command: str

    def __str__(self) -> str:
        if self.kind == "unknown file":
            return (f"{self.path} is in {RESULTS} but no suite declares it: declare it in SUITES in "
                    "benchmarks/provenance.py, or delete it")
        what = {
            "no record": "has no provenance record (made before provenance, or by a run that did not record)",
            "stale input": f"is stale: its input {self.path} changed after the run that made it",
            "edited output": f"does not match its record: {self.path} changed after the recorded run (edited by "
                             "hand, or rewritten by a smoke run or by a run that did not record)",
            "missing output": f"lost an output: {self.path} is recorded but absent",
            "missing input": f"declares an input that does not exist: {self.path} (update SUITES in "
                             "benchmarks/provenance.py)",
        }[self.kind]
        return f"suite {self.suite} {what}; rerun: {self.command}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git(root: Path, *args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() if strip else out.stdout


def _dirty(root: Path, paths: Sequence[str]) -> list[str]:
    """The paths among ``paths`` with uncommitted changes (or untracked)."""
    out = _git(root, "status", "--porcelain", "--", *paths, strip=False)  # "XY path": the status may start blank
    return sorted(line[3:] for line in (out or "").splitlines() if line.strip())


def _read(root: Path) -> dict:
    path = root / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def _write(root: Path, data: dict) -> None:
    path = root / RECORD
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class _Locked:
    """An exclusive lock around read-modify-write of the record (two suites may end at once)."""

    def __init__(self, root: Path):
        self.path = root / RESULTS / "provenance.lock.tmp"  # *.tmp: ignored by git and by check()

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def command_line(argv: Sequence[str] | None = None) -> str:
    """``sys.argv`` as the ``python -m`` command a reader can paste."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return "python"
    head = Path(argv[0])
    if head.name == "__main__.py":
        module = head.parent.name
    elif head.suffix == ".py" and head.parent.name == "benchmarks":
        module = f"benchmarks.{head.stem}"
    else:
        return shlex.join(argv)
    return shlex.join(["python", "-m", module, *argv[1:]])


def _process_start() -> float | None:
    """When this process started (UNIX time), from /proc; None where there is no /proc."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _changed_since(root: Path, paths: Sequence[str], start: float | None) -> list[str]:
    """Inputs modified after the run began: the run read their old content (in a shared working tree
    another engineer may save a file mid-run), so their current hash must not be recorded as the run's."""
    if start is None:
        return []
    return [p for p in paths if (root / _base(p)).is_file() and (root / _base(p)).stat().st_mtime > start + 1]


def lock_pins(text: str, roots: Sequence[str] = NUMERIC_PACKAGES) -> str:
    """The ``name==version`` lines of a pip-compile lock for ``roots`` and their dependencies (followed
    through the lock's ``# via`` notes), sorted."""
    norm = lambda n: n.strip().lower().replace("_", "-")  # noqa: E731
    pins, parents, current = {}, {}, None
    for line in text.splitlines():
        body = line.strip()
        if body and not body.startswith("#") and "==" in body and not line[0].isspace():
            current = norm(body.split("==")[0].split("[")[0])
            pins[current] = body.split(";")[0].split()[0].strip()
            parents[current] = set()
        elif current and body.startswith("#"):
            via = body.lstrip("#").strip()
            via = via[len("via"):].strip() if via.startswith("via") else via
            if via:
                parents[current].add(norm(via))
    keep = {norm(r) for r in roots} & set(pins)
    grew = True
    while grew:
        new = {n for n, ps in parents.items() if n not in keep and ps & keep}
        keep |= new
        grew = bool(new)
    return "\n".join(sorted(pins[n] for n in keep)) + "\n"


SELECTORS = {"numeric": lock_pins}


def _base(p: str) -> str:
    return p.split("#", 1)[0]


def digest(p: str, data: bytes) -> str:
    """sha256 of an input's content, through its selector when it names one (``path#selector``)."""
    if "#" in p:
        data = SELECTORS[p.split("#", 1)[1]](data.decode()).encode()
    return hashlib.sha256(data).hexdigest()


def _hashes(root: Path, paths: Sequence[str]) -> dict[str, str | None]:
    return {p: digest(p, (root / _base(p)).read_bytes()) if (root / _base(p)).is_file() else None for p in paths}


def inputs_digest(suite: str, root: Path | None = None) -> str:
    """One sha256 over the current content of every declared input of ``suite``: the key under which a
    benchmark may keep partial work between runs, so a resumed run never mixes in work made by other code."""
    root = root or Path(__file__).resolve().parent.parent
    hashes = _hashes(root, SUITES[suite].inputs)
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def record(suite: str, *, seeds=None, argv: Sequence[str] | None = None, rerender: bool = False,
           commit: str | None = None, note: str | None = None, root: Path | None = None,
           suites: Mapping[str, Suite] | None = None, hashed: tuple[dict, dict] | None = None,
           started: float | None = None) -> dict:
    """Write ``suite``'s record into ``benchmarks/results/provenance.json`` and return it.

    Called after a run wrote the suite's outputs.  ``rerender=True``: the outputs were rewritten from
    the raw JSON of an earlier run (``python -m benchmarks.pmask render``): the earlier record's
    commit and input hashes are kept except for the suite's ``render_inputs``, and the re-render is
    recorded beside them.  ``commit``: the commit the results were made on, when it is not HEAD
    (only :func:`stamp` passes it, with ``hashed``: the input and output hashes as committed).
    ``started``: when the run began (UNIX time; :func:`after_run` passes the process's start): the
    commit is HEAD as it was then (``commit_at_end`` beside it when commits landed during the run), and
    an input modified after it is recorded as changed during the run, so the table shows as stale."""
    root = Path(root or ROOT)
    suites = SUITES if suites is None else suites
    if suite not in suites:
        raise ValueError(f"suite={suite!r} is not one of {sorted(suites)} (add it to SUITES in benchmarks/provenance.py)")
    spec = suites[suite]
    missing = [p for p in spec.outputs if not (root / p).is_file()]
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    head = _git(root, "rev-parse", "HEAD")
    with _Locked(root):
        data = _read(root)
        if rerender:
            old = data.get(suite)
            if old is None:
                raise ValueError(f"cannot record a re-render of {suite}: there is no record of the run it re-renders; "
                                 f"run `{spec.command}`")
            entry = {k: v for k, v in old.items() if k != "missing_outputs"}
            entry["inputs"] = {**old["inputs"], **_hashes(root, spec.render_inputs)}
            entry["rendered"] = {"command": command_line(argv), "commit": head, "time": now,
                                 "dirty": _dirty(root, spec.render_inputs), "inputs": list(spec.render_inputs)}
        else:
            at_start = _git(root, "rev-list", "-1", f"--before=@{int(started)}", "HEAD") if started else None
            if at_start and at_start != head and not commit:  # commits landed while a long run was going
                entry_commit, extra = at_start, {"commit_at_end": head}
            else:
                entry_commit, extra = commit or head, {}
            entry = {"command": command_line(argv), "commit": entry_commit, "time": now, **extra,
                     "dirty": [] if hashed else _dirty(root, spec.inputs),
                     "inputs": hashed[0] if hashed else _hashes(root, spec.inputs)}
            during = [] if hashed else _changed_since(root, spec.inputs, started)
            if during:  # not the content the run read: recorded as unknown, so check() calls the table stale
                entry["changed_during_run"] = during
                entry["inputs"].update({p: "changed during the run" for p in during})
                print(f"provenance: {suite}: {', '.join(during)} changed while the run was going; the table is "
                      f"recorded as stale", file=sys.stderr)
            if seeds is not None:
                entry["seeds"] = seeds
            if note:
                entry["note"] = note
        outputs = hashed[1] if hashed else _hashes(root, spec.outputs)
        entry["outputs"] = {p: h for p, h in outputs.items() if h is not None}
        if missing:
            entry["missing_outputs"] = missing
        data[suite] = entry
        _write(root, data)
    return entry


def check(*, root: Path | None = None, suites: Mapping[str, Suite] | None = None) -> list[Problem]:
    """Every way the committed results disagree with the tree (see the module docstring)."""
    root = Path(root or ROOT)
    suites = SUITES if suites is None else suites
    data = _read(root)
    problems: list[Problem] = []
    for name, spec in sorted(suites.items()):
        current = _hashes(root, spec.inputs)
        for p in spec.inputs:
            if current[p] is None:
                problems.append(Problem(name, "missing input", p, spec.command))
        rec = data.get(name)
        present = [p for p in spec.outputs if (root / p).is_file()]
        if rec is None:
            if present:
                problems.append(Problem(name, "no record", None, spec.command))
            continue
        recorded_inputs = rec.get("inputs", {})
        for p in spec.inputs:
            if current[p] is not None and recorded_inputs.get(p) != current[p]:
                problems.append(Problem(name, "stale input", p, spec.command))
        recorded_outputs = rec.get("outputs", {})
        for p in spec.outputs:
            if p in recorded_outputs and not (root / p).is_file():
                problems.append(Problem(name, "missing output", p, spec.command))
            elif (root / p).is_file() and recorded_outputs.get(p) != sha256(root / p):
                problems.append(Problem(name, "edited output", p, spec.command))
    declared = {p for spec in suites.values() for p in spec.outputs} | {RECORD}
    results = root / RESULTS
    if results.is_dir():
        for f in sorted(results.iterdir()):
            rel = f"{RESULTS}/{f.name}"
            if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".tmp") \
                    and "_fast." not in f.name and rel not in declared:
                problems.append(Problem(None, "unknown file", rel, ""))
    return problems


def after_run(benchmark: str, args, part: str = "all", argv: Sequence[str] | None = None) -> list[str]:
    """Record what a finished run of ``benchmark`` (``part``) wrote, unless it was a smoke run or wrote
    elsewhere than ``benchmarks/results/``.  Returns the suites recorded."""
    if os.environ.get("FACELAB_FAST") == "1" or getattr(args, "fast", False) or getattr(args, "ta_quick", False):
        return []
    out = Path(getattr(args, "out", ROOT / RESULTS))
    if out.resolve() != (ROOT / RESULTS).resolve():
        return []
    rerender = (benchmark, part) in RENDER_PARTS
    names = RENDER_PARTS.get((benchmark, part)) or PARTS.get((benchmark, part), ())
    # the seeds of the suites made once per seed: --seeds, or their default (the stand-alone
    # targeted_anonymization run's flag is ta_seeds); a re-render keeps the run's
    given = getattr(args, "ta_seeds", None) or getattr(args, "seeds", None)
    for name in names:
        seeds = chosen_seeds(given) if name in SEEDED and not rerender else None
        record(name, argv=argv, rerender=rerender, seeds=seeds, started=_process_start())
        print(f"provenance: recorded {name} in {RECORD}", flush=True)
    return list(names)


def _committed_hashes(root: Path, rev: str, paths: Sequence[str]) -> dict[str, str | None]:
    """sha256 of each path as committed at ``rev`` (None where it does not exist there)."""
    out = {}
    for p in paths:
        blob = subprocess.run(["git", "show", f"{rev}:{_base(p)}"], cwd=root, capture_output=True)
        out[p] = digest(p, blob.stdout) if blob.returncode == 0 else None
    return out


def stamp(suite: str, *, run_commit: str | None = None, excuse: Sequence[str] = (), root: Path | None = None,
          suites: Mapping[str, Suite] | None = None) -> dict:
    """Record ``suite`` without rerunning it, only when git history shows its outputs are fresh.

    The run's commit is ``run_commit`` or, when the outputs are committed and unmodified, the earliest
    of the commits that last wrote each of them.  Refused (ValueError naming the files and commits)
    when an input's content at HEAD differs from the run's commit, unless every commit that changed it
    is in ``excuse`` (a change known not to touch what the table measures, such as the line that
    calls this module; the record's note names each excused commit).  Inputs are hashed as committed
    at HEAD, so an uncommitted edit to an input shows up in :func:`check` as stale."""
    root = Path(root or ROOT)
    suites = SUITES if suites is None else suites
    if suite not in suites:
        raise ValueError(f"suite={suite!r} is not one of {sorted(suites)}")
    spec = suites[suite]
    outputs_dirty = _dirty(root, spec.outputs)
    if run_commit is None:
        if outputs_dirty:
            raise ValueError(f"{suite}: its outputs have uncommitted changes; pass --run-commit (the commit the run "
                             "started from) or commit them first")
        # the earliest of the outputs' last writes: every output must be fresh, the oldest decides
        lasts = [_git(root, "log", "-1", "--format=%H", "--", p) for p in spec.outputs if (root / p).is_file()]
        lasts = [c for c in lasts if c]
        run_commit = min(lasts, key=lambda c: int(_git(root, "log", "-1", "--format=%ct", c) or 0), default=None)
        if not run_commit:
            raise ValueError(f"{suite}: its outputs were never committed; run `{spec.command}`")
    else:
        run_commit = _git(root, "rev-parse", "--verify", f"{run_commit}^{{commit}}")
        if not run_commit:
            raise ValueError("--run-commit is not a commit of this repository")
    excused = {_git(root, "rev-parse", "--verify", f"{c}^{{commit}}") or c for c in excuse}
    # content, not history: a change made and reverted after the run leaves the inputs as the run read them
    inputs = _committed_hashes(root, "HEAD", spec.inputs)
    then = _committed_hashes(root, run_commit, spec.inputs)
    changed = [p for p in spec.inputs if inputs[p] != then[p]]
    commits = (_git(root, "log", "--format=%H", f"{run_commit}..HEAD", "--", *sorted({_base(p) for p in changed}))
               or "").split() if changed else []
    if changed and not commits:
        raise ValueError(f"{suite}: inputs differ from {run_commit[:12]} but no commit after it changed them "
                         f"({', '.join(changed)}): is --run-commit an ancestor of HEAD?")
    blamed = [c for c in commits if c not in excused]
    if blamed:
        subjects = [_git(root, "log", "-1", "--format=%h %s", c) for c in blamed]
        raise ValueError(f"{suite} is stale, not stamped: inputs changed after {run_commit[:12]}: {', '.join(changed)} "
                         f"(in {'; '.join(subjects)}); run `{spec.command}`")
    if any(h is None for h in inputs.values()):
        raise ValueError(f"{suite}: inputs not committed at HEAD: {[p for p, h in inputs.items() if h is None]}")
    outputs = _hashes(root, spec.outputs) if outputs_dirty else _committed_hashes(root, "HEAD", spec.outputs)
    note = f"stamped without rerunning: outputs from commit {run_commit[:12]}, no input changed since"
    if commits:
        note += (" except in these commits, excused as not touching what the table measures: "
                 + "; ".join(_git(root, "log", "-1", "--format=%h %s", c) or c for c in commits))
    return record(suite, commit=run_commit, root=root, suites=suites, argv=shlex.split(_table_command(root, spec)),
                  note=note, hashed=(inputs, outputs))


def _table_command(root: Path, spec: Suite) -> str:
    """The command a table says made it (its ``Command: `…``` line), else the suite's command."""
    for p in spec.outputs:
        if p.endswith(".md") and (root / p).is_file():
            for line in (root / p).read_text().splitlines():
                if line.startswith("Command: `"):
                    return line.split("`")[1]
    return spec.command


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.provenance", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="list every stale, unrecorded or hand-edited result (exit 1 if any)")
    s = sub.add_parser(
        "stamp", help="record SUITE WITHOUT rerunning it: only to bootstrap results made before provenance "
                      "existed, or a run that started before its hook did; refused when git shows an input changed "
                      "after the run. A normal run records by itself.",
        description="Record SUITE without rerunning it. ONLY for results made before provenance existed (or by a run "
                    "that began before the recording hook was in place): it is refused unless git history shows that "
                    "no input changed after the run's commit. Anything else: rerun the suite's command.")
    s.add_argument("suite", choices=sorted(SUITES))
    s.add_argument("--run-commit", default=None,
                   help="the commit the run was made on (default: the commit that last wrote the outputs)")
    s.add_argument("--excuse", nargs="+", default=[], metavar="COMMIT",
                   help="commits that changed an input without touching what the table measures (e.g. the line that "
                        "records provenance); each is named in the record's note")
    a = p.parse_args(argv)
    if a.cmd == "check":
        problems = check()
        for prob in problems:
            print(prob)
        if problems:
            print(f"\n{len(problems)} problem(s) in {RESULTS}; rerun the commands above (each run records itself).",
                  file=sys.stderr)
        return 1 if problems else 0
    try:
        entry = stamp(a.suite, run_commit=a.run_commit, excuse=a.excuse)
    except ValueError as e:
        print(f"stamp: {e}", file=sys.stderr)
        return 1
    print(f"stamped {a.suite} at {entry['commit'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
