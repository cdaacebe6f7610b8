"""Colab and Binder, as far as they can be checked without them.

* Every notebook's Colab badge and install cell follow the one repository
  address in pyproject.toml (tools/sync_repo_url.py).
* The Colab install cell, parsed, never reinstalls, upgrades or downgrades
  Colab's torch: no torch/torchvision requirement, no --upgrade or
  --force-reinstall, facenet-pytorch only with --no-deps, and what it does
  install (facelab and its dependencies) asks torch for lower bounds only.
* binder/ follows repo2docker's conventions.
"""
from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_repo_url  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TORCH = {"torch", "torchvision", "torchaudio"}


def _colab_cell(nb: Path) -> str:
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and "google.colab" in src:
            return src
    raise AssertionError(f"{nb.name} has no Colab install cell")


def _pip_installs(src: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` the cell runs (``pip + [...]`` calls)."""
    tree = ast.parse(src)
    base: list[str] = []
    runs: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            items = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
            if "pip" in items and "install" in items:
                base = items
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "run" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.BinOp) and isinstance(arg.right, ast.List):
                runs.append(base + [ast.literal_eval(e) for e in arg.right.elts])
            elif isinstance(arg, ast.List):
                items = [ast.literal_eval(e) for e in arg.elts if isinstance(e, ast.Constant)]
                if "pip" in items:
                    runs.append(items)
    return [r for r in runs if "install" in r]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", requirement, maxsplit=1)[0].strip().lower()


def test_repository_address_lives_in_one_place():
    assert sync_repo_url.sync(check=True) == [], "run python tools/sync_repo_url.py"
    badge, install = sync_repo_url.expected(sync_repo_url.repository())
    for nb in NOTEBOOKS:
        text = nb.read_text(encoding="utf-8")
        assert badge + nb.name in text, f"{nb.name}: the Colab badge does not open this notebook"
        assert install in _colab_cell(nb), f"{nb.name}: the install cell does not install {install}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_never_touches_torch(nb):
    runs = _pip_installs(_colab_cell(nb))
    assert runs, f"{nb.name}: no pip install found in the Colab cell"
    for args in runs:
        i = args.index("install")
        options = [a for a in args[i + 1:] if a.startswith("-")]
        packages = [a for a in args[i + 1:] if not a.startswith("-")]
        assert not {"-U", "--upgrade", "--force-reinstall", "--ignore-installed", "-I"} & set(options), args
        assert not TORCH & {_name(p) for p in packages}, f"{nb.name} installs torch itself: {args}"
        if any(_name(p) == "facenet-pytorch" for p in packages):
            assert "--no-deps" in options, f"{nb.name}: facenet-pytorch's pins would downgrade torch: {args}"


def test_what_colab_installs_asks_torch_for_lower_bounds_only():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    for d in deps:
        if _name(d) in TORCH:
            spec = d[len(_name(d)):]
            assert re.fullmatch(r"\s*>=\s*[\d.]+\s*", spec), f"{d}: only a lower bound keeps Colab's torch"
    assert not any(_name(d) == "facenet-pytorch" for d in deps), "facenet-pytorch must stay an undeclared --no-deps install"


def test_binder_follows_repo2docker_conventions():
    binder = ROOT / "binder"
    env = (binder / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.\d+", env, re.M), "pin python in environment.yml (repo2docker defaults to 3.10)"
    post = binder / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    # with binder/ present repo2docker installs neither requirements.txt nor the package: postBuild must
    assert "-r requirements.txt" in text and "--no-deps facenet-pytorch" in text and re.search(r"install .*-e \.", text)
    assert not (binder / "requirements.txt").exists(), "beside environment.yml, repo2docker would ignore it"
