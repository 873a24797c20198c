"""Macro-averaged F1 as a local `evaluate` module: every class counts the same, however rare.

Load with `evaluate.load("<abs path>/cancernet_hf/evaluation/metrics/macro_f1")`.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score

_DESCRIPTION = "Unweighted mean of the per-class F1 scores."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class indices.
    references (list of int): true class indices.
    labels (list of int, optional): the classes to average over. Default: the classes that occur in
        predictions or references (a class absent from both says nothing about the model).
Returns:
    macro_f1 (float): in [0, 1] (a class never predicted and never true counts 0 when listed in labels);
        nan when there are no samples.
Examples:
    >>> metric = evaluate.load("cancernet_hf/evaluation/metrics/macro_f1")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'macro_f1': 0.6666666666666666}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
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

    def _compute(self, predictions, references, labels=None):
        if np.asarray(references).size == 0:
            return {"macro_f1": float("nan")}
        score = f1_score(references, predictions, labels=labels, average="macro", zero_division=0)
        return {"macro_f1": float(score)}
