"""Every method is a generator of :class:`facelab.steps.Step` (see docs/architecture.md)."""
from .baselines import fgsm, ifgsm, mifgsm, pgd

__all__ = ["fgsm", "ifgsm", "pgd", "mifgsm"]
