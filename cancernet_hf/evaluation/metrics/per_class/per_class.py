"""Per-class precision, recall, F1 and support as a local `evaluate` module.

Returns lists indexed by class id, so a report can name each class (Trainer's `compute_metrics`
wants scalars: use `macro_f1` there). Load with
`evaluate.load("<abs path>/cancernet_hf/evaluation/metrics/per_class")`.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import precision_recall_fscore_support

_DESCRIPTION = (
    "Precision, recall, F1 and support of every class, 0 where undefined (no predictions/no support)."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class indices.
    references (list of int): true class indices.
    num_classes (int): number of classes; the lists have this length.
Returns:
    precision, recall, f1 (list of float) and support (list of int), one entry per class id.
Examples:
    >>> metric = evaluate.load("cancernet_hf/evaluation/metrics/per_class")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_classes=3)["f1"]
    [0.6666666666666666, 0.6666666666666666, 0.0]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerClass(evaluate.Metric):
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

    def _compute(self, predictions, references, num_classes):
        labels = list(range(int(num_classes)))
        p, r, f, s = precision_recall_fscore_support(
            np.asarray(references), np.asarray(predictions), labels=labels, zero_division=0
        )
        return {
            "precision": [float(x) for x in p],
            "recall": [float(x) for x in r],
            "f1": [float(x) for x in f],
            "support": [int(x) for x in s],
        }
