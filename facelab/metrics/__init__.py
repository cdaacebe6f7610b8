"""Evaluation: verification, identification (rank-N), image quality, and the statistics of claims."""
from .diversity import focal_diversity, generalized_diversity, rank_teams
from .claims import chance_top_n, compare_paired, paired_bootstrap_ci, sign_test, verdict
from .identification import identification_rates, rank_n_targeted, rank_n_untargeted, similarity_matrix, top_n
from .quality import mmd, psnr, ssim
from .verification import roc_auc, tar_at_far, threshold_at_far

__all__ = [
    "threshold_at_far", "tar_at_far", "roc_auc", "identification_rates", "rank_n_targeted", "rank_n_untargeted",
    "similarity_matrix", "top_n", "mmd", "psnr", "ssim",
    "sign_test", "paired_bootstrap_ci", "verdict", "compare_paired", "chance_top_n",
    "focal_diversity", "generalized_diversity", "rank_teams",
]
