"""NLL, ECE, AURC against hand-computed numbers; temperature scaling fixes over-confidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cancernet_hf.evaluation.calibration import (
    aurc,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    risk_coverage,
)
from cancernet_hf.evaluation.scores import softmax


def test_nll_by_hand():
    probs = np.array([[0.5, 0.5], [0.8, 0.2]])
    assert negative_log_likelihood(probs, np.array([0, 1])) == pytest.approx((math.log(2) + math.log(5)) / 2)
    # A zero probability on the true class stays finite.
    assert math.isfinite(negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])))


def test_ece_and_bins_by_hand():
    # Confidences .9 (right), .85 (right) -> bin (.8, .9]: acc 1, conf .875; .6 (wrong), .55 (right) ->
    # bin (.5, .6]: acc .5, conf .575. ECE = .5 * .125 + .5 * .075 = .1
    probs = np.array([[0.9, 0.1], [0.15, 0.85], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.1)
    bins = reliability(probs, labels, n_bins=10)
    assert bins["bin_count"] == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]
    assert bins["bin_accuracy"][8] == pytest.approx(1.0) and bins["bin_accuracy"][5] == pytest.approx(0.5)
    assert bins["bin_confidence"][8] == pytest.approx(0.875) and bins["bin_confidence"][5] == pytest.approx(
        0.575
    )
    assert math.isnan(bins["bin_accuracy"][0])
    # A perfectly calibrated pair: ECE 0.
    assert expected_calibration_error(
        np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([0, 1]), 10
    ) == pytest.approx(0)


def test_aurc_by_hand():
    # Confidences .9 right, .8 wrong, .7 right, .6 wrong -> risks 0, 1/2, 1/3, 2/4.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    coverage, risk = risk_coverage(probs, labels)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 1 / 2])
    assert aurc(probs, labels) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    # Tied confidences: no order can be assumed, each tied sample counts the group's mean error.
    tied = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert aurc(tied, np.array([0, 1])) == pytest.approx(0.5)
    assert aurc(tied, np.array([1, 0])) == pytest.approx(0.5)


def _overconfident(n: int = 2000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits 8x too sharp: labels are drawn from softmax(logits / 8)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1.5, size=(n, classes))
    p = softmax(base)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return base * 8.0, labels


def test_temperature_fixes_overconfidence():
    logits, labels = _overconfident()
    val, test = slice(0, 1000), slice(1000, None)
    t = fit_temperature(logits[val], labels[val])
    assert 6.0 < t < 10.5  # the true temperature is 8
    before, after = softmax(logits[test]), softmax(logits[test] / t)
    assert negative_log_likelihood(after, labels[test]) < 0.6 * negative_log_likelihood(before, labels[test])
    assert expected_calibration_error(after, labels[test]) < 0.5 * expected_calibration_error(
        before, labels[test]
    )
    # Temperature never changes the ranking, hence the accuracy.
    np.testing.assert_array_equal(before.argmax(1), after.argmax(1))


def test_temperature_of_calibrated_model_is_near_one():
    logits, labels = _overconfident(seed=1)
    assert fit_temperature(logits / 8.0, labels) == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="zero samples"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0))
