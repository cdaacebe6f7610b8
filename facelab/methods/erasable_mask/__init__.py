"""ErasableMask (Shen, Zhang et al.): a trainable, erasable face protector.

A generator turns a clean face into an attribute-edited, *protected* face
that face-recognition models no longer match to its owner; a restorer held
by a trusted authority erases the protection.  facelab's version is a
reconstruction from the paper's prose (its equation bodies are lost) at
teaching scale: 64 px faces, small AttGAN-style networks, a few minutes of
CPU.  See docs/erasable_mask.md for every choice.

    from facelab.methods import erasable_mask as em
    model = em.load()                          # the teaching-scale checkpoint (train it first)
    x_p = model.protect(x64, {"male": 1, "young": 0, "smiling": 1})
    x_r = model.erase(x_p)
    steps = em.erasable_mask(x64, protector=model)   # the same as a Step method (clean, protected)

Training: :func:`train` (a Step generator), ``python -m facelab.methods.erasable_mask``.
"""
from .checkpoint import CheckpointError, checkpoint_path, exists, load, save
from .data import FaceData, held_out_faces, offline_faces, training_faces
from .evaluate import evaluate, match_rates
from .method import erasable_mask, own_attributes
from .model import ErasableMask
from .nets import NetConfig
from .train import ROWS, TrainConfig, configs, preview_rows, train, train_and_save

__all__ = [
    "ErasableMask", "NetConfig", "TrainConfig", "train", "train_and_save", "configs", "preview_rows", "ROWS",
    "load", "save", "exists", "checkpoint_path", "CheckpointError", "FaceData", "held_out_faces", "offline_faces",
    "training_faces", "evaluate", "match_rates", "erasable_mask", "own_attributes",
]
