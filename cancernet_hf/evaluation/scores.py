"""Scores at both label levels from sub-class probabilities, computed with our local `evaluate` modules.

The main class is derived two ways so their gap is visible: from the summed sub-class
probabilities (the product's rule, DESIGN.md) and from the main class of the sub-class argmax.
`Trainer` calls `classification_scores` after every evaluation, so the modules are loaded once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import CancerNetError, did_you_mean
from ..taxonomy import MULTI_CANCER, Taxonomy

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
METRIC_NAMES = ("accuracy", "macro_f1", "balanced_accuracy", "per_class", "ece")
SCORE_KEYS = (
    "sub_accuracy",
    "sub_macro_f1",
    "main_accuracy",
    "main_macro_f1",
    "main_accuracy_from_argmax",
    "main_macro_f1_from_argmax",
)


class MetricInputError(CancerNetError, ValueError):
    """Predictions and labels handed to a metric do not fit together or are not probabilities."""


@functools.cache
def load_metric(name: str):
    """One of our local `evaluate` modules, loaded once per process (in memory: safe under DDP)."""
    import evaluate

    if name not in METRIC_NAMES:
        raise KeyError(
            f"Unknown metric {name!r}; ours are {list(METRIC_NAMES)}.{did_you_mean(name, METRIC_NAMES)}"
        )
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: subtracts the row max)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def main_probabilities(probs: np.ndarray, taxonomy: Taxonomy = MULTI_CANCER) -> np.ndarray:
    """(N, num_main) main-class probabilities: the sum of each main class's sub-class probabilities."""
    membership = np.zeros((taxonomy.num_sub, taxonomy.num_main), dtype=np.float64)
    membership[np.arange(taxonomy.num_sub), taxonomy.sub_to_main] = 1.0
    return np.asarray(probs, dtype=np.float64) @ membership


def check_probabilities(
    probs: np.ndarray, labels: np.ndarray, taxonomy: Taxonomy
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and that rows are probabilities; return (float64 probs, int64 labels)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[1] != taxonomy.num_sub:
        raise MetricInputError(
            f"Probabilities of shape {probs.shape} do not match taxonomy {taxonomy.name!r} "
            f"({taxonomy.num_sub} sub-classes); pass an (N, {taxonomy.num_sub}) array in the taxonomy's label order."
        )
    if probs.shape[0] != labels.shape[0]:
        raise MetricInputError(
            f"{probs.shape[0]} probability rows but {labels.shape[0]} labels; pass one label per row."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= taxonomy.num_sub):
        raise MetricInputError(
            f"Labels must be sub-class ids in [0, {taxonomy.num_sub}), got range "
            f"[{labels.min()}, {labels.max()}]; encode them with taxonomy.label2id."
        )
    if probs.size and (probs.min() < -1e-6 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-2)):
        raise MetricInputError(
            "Rows are not probabilities (negative values or rows not summing to 1): these look like "
            "logits; convert them with cancernet_hf.evaluation.scores.softmax first."
        )
    return probs, labels


def _acc_f1(predictions: np.ndarray, references: np.ndarray) -> tuple[float, float]:
    acc = load_metric("accuracy").compute(predictions=predictions, references=references)["accuracy"]
    f1 = load_metric("macro_f1").compute(predictions=predictions, references=references)["macro_f1"]
    return float(acc), float(f1)


def classification_scores(
    probs: np.ndarray, labels: np.ndarray, taxonomy: Taxonomy = MULTI_CANCER
) -> dict[str, float]:
    """Accuracy and macro-F1 of sub-classes and main classes (both main-class rules), as Python floats.

    `probs` is (N, num_sub) sub-class probabilities, `labels` the (N,) sub-class ids. Macro-F1 averages
    over the classes present in predictions or labels. Keys: SCORE_KEYS.
    """
    probs, labels = check_probabilities(probs, labels, taxonomy)
    sub_to_main = np.asarray(taxonomy.sub_to_main, dtype=np.int64)
    sub_pred = probs.argmax(axis=1)
    main_true = sub_to_main[labels]
    main_pred = main_probabilities(probs, taxonomy).argmax(axis=1)
    main_pred_argmax = sub_to_main[sub_pred]

    scores: dict[str, float] = {}
    scores["sub_accuracy"], scores["sub_macro_f1"] = _acc_f1(sub_pred, labels)
    scores["main_accuracy"], scores["main_macro_f1"] = _acc_f1(main_pred, main_true)
    scores["main_accuracy_from_argmax"], scores["main_macro_f1_from_argmax"] = _acc_f1(
        main_pred_argmax, main_true
    )
    return scores


def make_compute_metrics(taxonomy: Taxonomy = MULTI_CANCER) -> Callable[[object], dict[str, float]]:
    """A `compute_metrics` for `Trainer`: EvalPrediction (logits, labels) -> classification_scores."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):  # models that also return hidden states
            logits = logits[0]
        return classification_scores(softmax(logits), labels, taxonomy)

    return compute_metrics
