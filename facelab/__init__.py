"""facelab: face-privacy adversarial methods as stepwise generators.

Every method yields :class:`Step` records; :func:`run` drains one and returns
its last step, :func:`history` keeps a memory-bounded record for plotting.
Subpackages: ``models`` (the pretrained zoo), ``faces`` (loading, alignment,
face sets), ``ops``, ``methods``, ``metrics``, ``evaluation`` (embeddings,
thresholds with their source, results tables), ``viz``, ``experiments`` (each
paper's evaluation protocol, shared by its benchmark and its notebook).
"""
from importlib import import_module

from .steps import History, Step, history, run

__version__ = "0.1.0"
__all__ = ["Step", "History", "run", "history", "protect", "protect_many", "models", "faces", "ops", "methods", "metrics",
           "evaluation", "viz", "experiments"]


def __getattr__(name: str):
    if name in {"protect", "protect_many"}:  # the functions (module: facelab.protection)
        return getattr(import_module(".protection", __name__), name)
    if name in {"models", "faces", "ops", "methods", "metrics", "evaluation", "viz", "experiments", "cache",
                "validate"}:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'facelab' has no attribute {name!r}")
