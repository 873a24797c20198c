"""Top-1 accuracy as a local `evaluate` module (the Hub's `accuracy` script is unreachable offline).

Load with `evaluate.load("<abs path>/cancernet_hf/evaluation/metrics/accuracy")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Fraction of predictions equal to the reference label."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class indices.
    references (list of int): true class indices.
Returns:
    accuracy (float): in [0, 1]; nan when there are no samples.
Examples:
    >>> metric = evaluate.load("cancernet_hf/evaluation/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
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
            return {"accuracy": float("nan")}
        return {"accuracy": float(np.mean(predictions == references))}
