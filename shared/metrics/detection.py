"""Anomaly detection scores."""
from __future__ import annotations

import numpy as np
import torch


def roc_auc(scores: torch.Tensor | np.ndarray, is_anomaly: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) against 0/1 labels."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
    y = np.asarray(is_anomaly.detach().cpu() if isinstance(is_anomaly, torch.Tensor) else is_anomaly).astype(int)
    if y.min() == y.max():
        raise ValueError("ROC-AUC needs both normal and anomalous examples")
    return float(roc_auc_score(y, s))
