"""Keep every notebook's Colab badge and install cell on the one repository address.

The address lives in one place, ``[project.urls] Repository`` in pyproject.toml.
Publishing the repository elsewhere is a one-line change there, then

    python tools/sync_repo_url.py          # rewrite the notebooks
    python tools/sync_repo_url.py --check  # exit 1 if any notebook disagrees (the tests run this)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"]+?/blob/[^/]+/notebooks/")
INSTALL = re.compile(r"git\+https://github\.com/[^\s\"'\\]+")


def repository() -> str:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        url = tomllib.load(fh)["project"]["urls"]["Repository"].rstrip("/")
    if not url.startswith("https://github.com/"):
        raise SystemExit(f"Repository URL must be a https://github.com/ address (Colab opens GitHub), got {url}")
    return url


def expected(url: str) -> tuple[str, str]:
    path = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/", f"git+{url}"


def sync(check: bool) -> list[str]:
    """Notebooks whose badge or install address differs (rewritten unless ``check``)."""
    badge, install = expected(repository())
    stale = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text(encoding="utf-8")
        new = INSTALL.sub(install, BADGE.sub(badge, text))
        if new != text:
            stale.append(nb.name)
            if not check:
                json.loads(new)  # still a notebook
                nb.write_text(new, encoding="utf-8")
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report notebooks that disagree")
    a = p.parse_args(argv)
    stale = sync(a.check)
    if stale:
        verb = "disagree with" if a.check else "now follow"
        print(f"{', '.join(stale)} {verb} pyproject's Repository {repository()}", file=sys.stderr)
    return 1 if (a.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
