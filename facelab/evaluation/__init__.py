"""Scoring protected faces, the same way for every paper's benchmark and notebook.

``embeddings``: one chunked embedding pass and a per-model cache of a face set's embeddings;
``thresholds``: each model's verification threshold at a FAR, calibrated or computed, with its
source; ``tables``: results rows that render as Markdown (and as a pandas DataFrame where pandas
is installed).  The claims' statistics are in :mod:`facelab.metrics.claims`.  This layer sits
above ``models``, ``faces`` and ``metrics`` and below ``experiments``.
"""
from .embeddings import EmbeddingCache, embed
from .tables import Table
from .thresholds import Threshold, resolve_thresholds

__all__ = ["embed", "EmbeddingCache", "Threshold", "resolve_thresholds", "Table"]
