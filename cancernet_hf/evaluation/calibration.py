"""Calibration and selective-prediction measures: NLL, ECE, reliability bins, temperature, AURC.

A classifier that says 0.99 should be right 99% of the time; a clinician deferring uncertain
cases needs the ranking by confidence to be good too (AURC). Temperatures are fitted on a
split other than the one reported (the validation split), never on the test split.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .scores import load_metric, softmax

logger = logging.getLogger(__name__)

DEFAULT_BINS = 15
# Temperatures searched (log-space); beyond this range a model is broken, not miscalibrated.
TEMPERATURE_RANGE = (0.05, 20.0)
_EPS = 1e-12


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log p(true class); probabilities are clipped at 1e-12 so one zero is finite."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return float("nan")
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, _EPS, 1.0)).mean())


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict:
    """ECE and the reliability-diagram bins, from our local `ece` evaluate module.

    Returns {"ece", "bin_confidence", "bin_accuracy", "bin_count"}; bins are (k/n, (k+1)/n].
    """
    probs = np.asarray(probs, dtype=np.float64)
    return load_metric("ece").compute(predictions=probs, references=np.asarray(labels), n_bins=n_bins)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float:
    """Top-1 ECE with equal-width bins."""
    return float(reliability(probs, labels, n_bins)["ece"])


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising NLL of softmax(logits / T) on these (held-out) samples.

    A 1-D bounded search over log T, so it is deterministic and needs no learning rate.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("Cannot fit a temperature on zero samples; pass a non-empty validation split.")

    def nll_at(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits / math.exp(log_t)), labels)

    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    result = minimize_scalar(nll_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
    temperature = float(math.exp(result.x))
    # The bounded search may stop a hair off T=1 when T=1 is (near) optimal: never return worse than 1.
    if nll_at(0.0) <= result.fun:
        temperature = 1.0
    if not TEMPERATURE_RANGE[0] * 1.01 < temperature < TEMPERATURE_RANGE[1] * 0.99:
        logger.warning(
            "fitted temperature %.3g is at the edge of the searched range %s: the model's confidences carry "
            "almost no information on these samples (an untrained or broken model?)",
            temperature,
            TEMPERATURE_RANGE,
        )
    logger.debug(
        "fitted temperature %.4f (NLL %.4f -> %.4f)", temperature, nll_at(0.0), nll_at(math.log(temperature))
    )
    return temperature


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage k/N and the error rate of the k most confident predictions, k = 1..N.

    Confidence = top probability. Tied confidences have no order, so each tied sample counts the
    mean error of its tie group (the expected risk under a random tie-break): deterministic.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    confidence = probs.max(axis=1)
    error = (probs.argmax(axis=1) != labels).astype(np.float64)
    order = np.argsort(-confidence, kind="stable")
    confidence, error = confidence[order], error[order]
    _, group, group_size = np.unique(-confidence, return_inverse=True, return_counts=True)
    group_error = np.bincount(group, weights=error) / group_size
    k = np.arange(1, n + 1)
    return k / n, np.cumsum(group_error[group]) / k


def aurc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean of the risks at coverage 1/N..N/N (lower is better)."""
    _, risk = risk_coverage(probs, labels)
    return float(risk.mean()) if risk.size else float("nan")
