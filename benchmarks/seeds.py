"""The seeds of the paper benchmarks that measure every claim once per seed (``--seeds``)."""
from __future__ import annotations

from typing import Iterable

#: what ``--seeds`` is when not given, for every benchmark that runs once per seed
DEFAULT = (0, 1, 2)

#: the suites whose results are made once per seed (their provenance records the seeds)
SEEDED = ("tip_im", "pmask", "pmt", "targeted_anonymization", "erasable_mask")


def chosen(given: Iterable[int] | None) -> list[int]:
    """The seeds a run uses: ``given`` (``--seeds``), or :data:`DEFAULT`.  ValueError unless distinct."""
    seeds = [int(s) for s in (given or DEFAULT)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must be distinct, got {seeds}")
    return seeds


def flag(seeds: Iterable[int]) -> str:
    """The ``--seeds`` part of a page's command line: empty for :data:`DEFAULT`, else ``" --seeds 2 0"``."""
    seeds = [int(s) for s in seeds]
    return "" if seeds == list(DEFAULT) else " --seeds " + " ".join(map(str, seeds))
