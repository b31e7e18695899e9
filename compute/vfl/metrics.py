"""The metrics released to the buyer on the validation rows: AUC, KS and log-loss of the combined scores."""
from __future__ import annotations

import numpy as np


def sigmoid(scores: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(scores, -500, 500))))


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean binary cross-entropy of the true sigmoid of the scores (the Taylor form is for gradients only)."""
    p = np.clip(sigmoid(scores), 1e-15, 1 - 1e-15)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank (as the Mann-Whitney statistic needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        raise ValueError("AUC needs both classes among the validation rows.")
    rank_sum = float(_ranks(scores)[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def ks(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the classes' cumulative score distributions."""
    thresholds = np.unique(scores)
    positive = np.sort(scores[labels == 1])
    negative = np.sort(scores[labels == 0])
    cdf_positive = np.searchsorted(positive, thresholds, side="right") / max(len(positive), 1)
    cdf_negative = np.searchsorted(negative, thresholds, side="right") / max(len(negative), 1)
    return float(np.max(np.abs(cdf_positive - cdf_negative)))


def lift_top_decile(labels: np.ndarray, scores: np.ndarray) -> float:
    """The positive rate among the highest-scored tenth of the rows over the positive rate of all rows."""
    base = float(np.mean(labels))
    if not len(labels) or base == 0:
        return 1.0
    top = np.argsort(-np.asarray(scores), kind="mergesort")[: max(1, len(labels) // 10)]
    return float(np.mean(labels[top])) / base


def own_model_scores(train: np.ndarray, labels: np.ndarray, valid: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """A party's logistic regression on its own (already standardised) columns alone, fitted in plaintext by
    Newton's method (the penalty λ/2·|w|² per row, as the joint model's, not on the intercept): its scores on
    the validation rows. The baseline a trial's uplift is measured against."""
    design = np.c_[train, np.ones(len(train))]
    weights = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    rows = len(labels)
    for _ in range(50):
        p = sigmoid(design @ weights)
        gradient = design.T @ (p - labels) / rows + penalty * weights
        hessian = (design.T * (p * (1 - p))) @ design / rows + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return np.asarray(np.c_[valid, np.ones(len(valid))] @ weights)
