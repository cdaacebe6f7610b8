"""Every method is a generator of :class:`facelab.steps.Step` (see docs/architecture.md).

``available()`` lists every registered method and ``get(name)`` starts any of them with one
signature (:mod:`facelab.methods.registry`)."""
from .baselines import fgsm, ifgsm, mifgsm, pgd
from .targeted_anonymization import average_features, targeted_anonymization, targeted_anonymization_baseline
from .fawkes import fawkes
from .pmask import pmask
from .pmt import pmt
from .reconstruction import white_box_reconstruction
from .registry import INPUTS, MethodInfo, available, get, register
from .tip_im import tip_im

__all__ = [
    "fgsm", "ifgsm", "pgd", "mifgsm", "targeted_anonymization", "targeted_anonymization_baseline",
    "average_features", "tip_im", "pmask", "fawkes", "pmt", "white_box_reconstruction",
    "available", "get", "register", "MethodInfo", "INPUTS",
]
