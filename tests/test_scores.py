"""classification_scores and the local evaluate modules against hand-computed numbers."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
from _evaluation_helpers import LABELS, PROBS, TINY
from sklearn.metrics import accuracy_score, f1_score

from cancernet_hf import MULTI_CANCER
from cancernet_hf.evaluation.scores import (
    METRIC_NAMES,
    METRICS_DIR,
    SCORE_KEYS,
    MetricInputError,
    classification_scores,
    main_probabilities,
    make_compute_metrics,
    softmax,
)


def test_scores_match_hand_computation():
    scores = classification_scores(PROBS, LABELS, TINY)
    assert tuple(scores) == SCORE_KEYS
    assert all(type(v) is float for v in scores.values())
    # Sub: predictions [0,0,1,2,2,0]; F1 per class: a1 0.8 (P 2/3, R 1), b1 2/3 (P 1, R 1/2), b2 1/2.
    assert scores["sub_accuracy"] == pytest.approx(4 / 6)
    assert scores["sub_macro_f1"] == pytest.approx((0.8 + 2 / 3 + 0.5) / 3)
    # Main from summed probabilities: all six right.
    assert scores["main_accuracy"] == pytest.approx(1.0)
    assert scores["main_macro_f1"] == pytest.approx(1.0)
    # Main of the sub argmax: the last sample goes to A. A: P 2/3 R 1 -> 0.8; B: P 1 R 3/4 -> 6/7.
    assert scores["main_accuracy_from_argmax"] == pytest.approx(5 / 6)
    assert scores["main_macro_f1_from_argmax"] == pytest.approx((0.8 + 6 / 7) / 2)


def test_main_rules_differ_on_crafted_case():
    # a1 is the top sub-class, but B's two sub-classes together outweigh it.
    probs = np.array([[0.40, 0.35, 0.25]])
    np.testing.assert_allclose(main_probabilities(probs, TINY), [[0.40, 0.60]])
    scores = classification_scores(probs, np.array([1]), TINY)
    assert scores["main_accuracy"] == 1.0
    assert scores["main_accuracy_from_argmax"] == 0.0
    assert scores["sub_accuracy"] == 0.0


def test_agrees_with_sklearn_on_multi_cancer():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(MULTI_CANCER.num_sub, 0.2), size=300)
    labels = rng.integers(0, MULTI_CANCER.num_sub, size=300)
    scores = classification_scores(probs, labels, MULTI_CANCER)
    pred = probs.argmax(1)
    assert scores["sub_accuracy"] == pytest.approx(accuracy_score(labels, pred))
    assert scores["sub_macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    s2m = np.array(MULTI_CANCER.sub_to_main)
    main_prob = main_probabilities(probs, MULTI_CANCER)
    np.testing.assert_allclose(main_prob.sum(1), 1.0)
    assert scores["main_macro_f1"] == pytest.approx(
        f1_score(s2m[labels], main_prob.argmax(1), average="macro")
    )


def test_rejects_logits_and_bad_shapes():
    with pytest.raises(MetricInputError, match="logits"):
        classification_scores(np.log(PROBS) * 3.0, LABELS, TINY)
    with pytest.raises(ValueError, match="3 sub-classes"):
        classification_scores(PROBS[:, :2], LABELS, TINY)
    with pytest.raises(ValueError, match="labels"):
        classification_scores(PROBS, LABELS[:5], TINY)
    with pytest.raises(ValueError, match="label2id"):
        classification_scores(PROBS, LABELS + 1, TINY)


def test_compute_metrics_for_trainer_takes_logits():
    class EvalPred:  # the two attributes of transformers.EvalPrediction that we read
        predictions = np.log(PROBS) + 5.0
        label_ids = LABELS

    assert make_compute_metrics(TINY)(EvalPred()) == pytest.approx(classification_scores(PROBS, LABELS, TINY))
    np.testing.assert_allclose(softmax(np.log(PROBS)), PROBS)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_modules_load_by_path_and_batch(name):
    metric = evaluate.load(str(METRICS_DIR / name))
    if name == "ece":
        for row, ref in zip(PROBS, LABELS):
            metric.add_batch(predictions=[row.tolist()], references=[int(ref)])
        assert metric.compute(n_bins=10)["ece"] == pytest.approx(
            # top confidences .7 .6 .8 .5 .8 .45, correct 1 1 1 0 1 0
            (abs(1 - 0.7) + abs(1 - 0.6) + abs(2 - 1.6) + abs(0 - 0.5) + abs(0 - 0.45)) / 6
        )
        return
    pred = PROBS.argmax(1)
    metric.add_batch(predictions=pred[:3], references=LABELS[:3])
    metric.add_batch(predictions=pred[3:], references=LABELS[3:])
    result = metric.compute(**({"num_classes": 3} if name == "per_class" else {}))
    expected = {
        "accuracy": {"accuracy": 4 / 6},
        "macro_f1": {"macro_f1": (0.8 + 2 / 3 + 0.5) / 3},
        "balanced_accuracy": {"balanced_accuracy": (1 + 0.5 + 0.5) / 3},
        "per_class": {
            "precision": [2 / 3, 1.0, 0.5],
            "recall": [1.0, 0.5, 0.5],
            "f1": [0.8, 2 / 3, 0.5],
            "support": [2, 2, 2],
        },
    }[name]
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
