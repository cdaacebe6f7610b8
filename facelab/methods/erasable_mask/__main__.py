"""``python -m facelab.methods.erasable_mask`` — train and store a checkpoint (see ``train.main``)."""
import sys

from .train import main

sys.exit(main())
