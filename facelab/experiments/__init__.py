"""Paper-claim evaluations: protocols and metrics shared by benchmarks and notebooks."""
from . import targeted_anonymization  # noqa: F401
from . import tip_im  # noqa: F401
