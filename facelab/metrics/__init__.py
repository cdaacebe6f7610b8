"""Evaluation: verification, identification (rank-N) and image quality."""
from .identification import identification_rates, rank_n_targeted, rank_n_untargeted, similarity_matrix, top_n
from .quality import mmd, psnr, ssim
from .verification import roc_auc, tar_at_far, threshold_at_far

__all__ = [
    "threshold_at_far", "tar_at_far", "roc_auc", "identification_rates", "rank_n_targeted", "rank_n_untargeted",
    "similarity_matrix", "top_n", "mmd", "psnr", "ssim",
]
