"""A paper benchmark's results file, read back: the JSON that ``python -m benchmarks NAME`` writes
beside its page in ``benchmarks/results/``, accepted only when it has the schema the reader expects
(an older file lacks what the page, figures and notebooks need)."""
from __future__ import annotations

import json
from pathlib import Path

#: where the committed results sit in a source checkout (absent when facelab is pip-installed)
RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def load_results(path, schema) -> dict | None:
    """The results dict at ``path`` if the file exists, is JSON and has ``"schema" == schema``, else None."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("schema") == schema else None


def committed_results(name: str, schema) -> dict | None:
    """``benchmarks/results/<name>.json`` beside the facelab package, if present and of ``schema``."""
    return load_results(RESULTS_DIR / f"{name}.json", schema)


__all__ = ["RESULTS_DIR", "load_results", "committed_results"]
