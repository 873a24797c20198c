"""Expected calibration error (ECE) as a local `evaluate` module; takes class probabilities.

Confidence = the top probability; samples fall in equal-width bins (lo, hi] over [0, 1]
(0 joins the first bin); ECE = sum over bins of (bin size / N) * |accuracy - mean confidence|.
Load with `evaluate.load("<abs path>/cancernet_hf/evaluation/metrics/ece")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Expected calibration error of the top-1 confidence, with equal-width bins."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of list of float): class probabilities per sample (rows sum to 1).
    references (list of int): true class indices.
    n_bins (int, optional): number of equal-width confidence bins (default 15).
Returns:
    ece (float): in [0, 1]; nan when there are no samples.
    bin_confidence, bin_accuracy (list of float, nan for empty bins), bin_count (list of int):
        the reliability diagram.
Examples:
    >>> metric = evaluate.load("cancernet_hf/evaluation/metrics/ece")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.6, 0.4]], references=[0, 1], n_bins=10)["ece"]
    0.35
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            # No numpy format: `evaluate` allows it only for flat `Value` features.
        )

    def _compute(self, predictions, references, n_bins=15):
        probs = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references)
        n_bins = int(n_bins)
        if references.size == 0:
            return {"ece": float("nan"), "bin_confidence": [], "bin_accuracy": [], "bin_count": []}
        probs = probs.reshape(len(references), -1)
        confidence = probs.max(axis=1)
        correct = (probs.argmax(axis=1) == references).astype(np.float64)
        # Bin b holds confidences in (b/n, (b+1)/n]; confidence 0 goes to bin 0.
        bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
        count = np.bincount(bins, minlength=n_bins)
        conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
        acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_conf = np.where(count > 0, conf_sum / count, np.nan)
            mean_acc = np.where(count > 0, acc_sum / count, np.nan)
        ece = float(np.abs(acc_sum - conf_sum).sum() / len(references))
        return {
            "ece": ece,
            "bin_confidence": [float(x) for x in mean_conf],
            "bin_accuracy": [float(x) for x in mean_acc],
            "bin_count": [int(x) for x in count],
        }
