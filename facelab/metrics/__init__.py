"""Evaluation: verification (thresholds at FAR, TAR, AUC) and more per paper."""
from .verification import roc_auc, tar_at_far, threshold_at_far

__all__ = ["threshold_at_far", "tar_at_far", "roc_auc"]
