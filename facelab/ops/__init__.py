"""Differentiable building blocks shared by the methods, each written once."""
from .budget import clip_to_budget, lp_norm, project, random_in_ball, steepest_step
from .diversity import affine_rotation_jitter, input_diversity
from .momentum import accumulate_momentum
from .smoothing import gaussian_kernel, translation_invariant
from .identity import as_models, embed_all, similarity_to
from .augment import SelfAugmentation, self_augmentation
from .mmd import gaussian_kernel_matrix, mmd, pairwise_sq_dist

__all__ = [
    "clip_to_budget", "lp_norm", "project", "random_in_ball", "steepest_step", "input_diversity", "affine_rotation_jitter", "accumulate_momentum",
    "gaussian_kernel", "translation_invariant", "as_models", "embed_all", "similarity_to", "SelfAugmentation",
    "self_augmentation", "gaussian_kernel_matrix", "mmd", "pairwise_sq_dist",
]
