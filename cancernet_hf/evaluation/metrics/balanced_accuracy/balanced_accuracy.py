"""Balanced accuracy (mean per-class recall) as a local `evaluate` module.

Unlike plain accuracy it does not reward predicting the frequent classes. Load with
`evaluate.load("<abs path>/cancernet_hf/evaluation/metrics/balanced_accuracy")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Mean over the classes present in the references of the recall of each class."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class indices.
    references (list of int): true class indices.
Returns:
    balanced_accuracy (float): in [0, 1]; nan when there are no samples.
Examples:
    >>> metric = evaluate.load("cancernet_hf/evaluation/metrics/balanced_accuracy")
    >>> metric.compute(predictions=[0, 0, 0, 1], references=[0, 0, 0, 0])
    {'balanced_accuracy': 0.75}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BalancedAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            format="numpy",
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if references.size == 0:
            return {"balanced_accuracy": float("nan")}
        recalls = [np.mean(predictions[references == c] == c) for c in np.unique(references)]
        return {"balanced_accuracy": float(np.mean(recalls))}
