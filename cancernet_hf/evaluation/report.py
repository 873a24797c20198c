"""Evaluate a member or the ensemble on one split: metrics.json, predictions.csv and PNG plots.

Every number comes from the model's logits on the split named in the manifest; the temperature
behind `ece_after_temperature` is fitted on the validation split (fitting it on the reported
split would flatter the model). Results produced on the synthetic demo data carry the notice.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np

from ..constants import DEMO_DATA_NOTICE, METRICS_FILE
from ..data.splits import read_split_protocol
from ..data.synthetic import is_synthetic
from ..errors import SplitError, TaxonomyError, UnknownModelError, did_you_mean
from ..taxonomy import MULTI_CANCER, Taxonomy
from . import plots
from .calibration import (
    DEFAULT_BINS,
    aurc,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    risk_coverage,
)
from .scores import check_probabilities, load_metric, main_probabilities, softmax

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.csv"
TEMPERATURE_SPLIT = "validation"


# ---- models --------------------------------------------------------------------------------------
def model_kind(model_dir: str | Path) -> str:
    """ "ensemble" when the folder's config maps to remote code (auto_map/custom_pipelines), else "member"."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        raise UnknownModelError(
            f"Model folder {model_dir} has no config.json; pass a folder written by `cancernet train` "
            "or `cancernet ensemble` (save_pretrained)."
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return "ensemble" if config.get("custom_pipelines") or config.get("auto_map") else "member"


def load_model(model_dir: str | Path, taxonomy: Taxonomy = MULTI_CANCER):
    """(model in eval mode, image processor, kind) for a member or an ensemble folder."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    kind = model_kind(model_dir)
    remote = kind == "ensemble"  # the ensemble's classes ship as remote code inside the folder
    model = AutoModelForImageClassification.from_pretrained(str(model_dir), trust_remote_code=remote)
    processor = AutoImageProcessor.from_pretrained(str(model_dir), trust_remote_code=remote)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels != taxonomy.sub_names:
        unknown = [name for name in labels if name not in taxonomy.sub_names]
        raise TaxonomyError(
            f"Model {model_dir} predicts labels {labels[:4]}... ({len(labels)}) that differ from taxonomy "
            f"{taxonomy.name!r} ({taxonomy.num_sub} sub-classes; unknown to it: {unknown[:4]}). "
            "Pass the taxonomy the model was trained with (--taxonomy FILE)."
        )
    return model.eval(), processor, kind


# ---- pure summary --------------------------------------------------------------------------------
def _level_scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": load_metric("accuracy").compute(predictions=pred, references=true)["accuracy"],
        "macro_f1": load_metric("macro_f1").compute(predictions=pred, references=true)["macro_f1"],
        "balanced_accuracy": load_metric("balanced_accuracy").compute(predictions=pred, references=true)[
            "balanced_accuracy"
        ],
    }


def _per_class(pred: np.ndarray, true: np.ndarray, names: list[str]) -> dict[str, dict]:
    table = load_metric("per_class").compute(predictions=pred, references=true, num_classes=len(names))
    return {
        name: {key: table[key][i] for key in ("precision", "recall", "f1", "support")}
        for i, name in enumerate(names)
    }


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return matrix


def summarize_predictions(
    logits: np.ndarray,
    labels: np.ndarray,
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    val_logits: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    n_bins: int = DEFAULT_BINS,
) -> dict:
    """All metrics of one split from its logits (pure: no model, no files).

    Main class = argmax of the summed sub-class probabilities (the "main_from_argmax" block shows the
    other rule). With validation logits, a temperature fitted on them gives `ece_after_temperature`.
    """
    probs, labels = check_probabilities(softmax(logits), labels, taxonomy)
    s2m = np.asarray(taxonomy.sub_to_main, dtype=np.int64)
    sub_pred = probs.argmax(axis=1)
    main_true, main_pred = s2m[labels], main_probabilities(probs, taxonomy).argmax(axis=1)
    argmax_scores = _level_scores(s2m[sub_pred], main_true)

    bins = reliability(probs, labels, n_bins)
    calibration = {
        "ece": bins["ece"],
        "ece_after_temperature": None,
        "temperature": None,
        "temperature_split": None,
        "nll": negative_log_likelihood(probs, labels),
        "nll_after_temperature": None,
        "n_bins": n_bins,
    }
    bin_keys = ("bin_confidence", "bin_accuracy", "bin_count")
    reliability_bins = {"model": {k: bins[k] for k in bin_keys}, "after_temperature": None}
    if val_logits is not None and val_labels is not None and len(val_labels):
        temperature = fit_temperature(val_logits, val_labels)
        scaled = softmax(np.asarray(logits, dtype=np.float64) / temperature)
        scaled_bins = reliability(scaled, labels, n_bins)
        calibration.update(
            ece_after_temperature=scaled_bins["ece"],
            temperature=temperature,
            temperature_split=TEMPERATURE_SPLIT,
            nll_after_temperature=negative_log_likelihood(scaled, labels),
        )
        reliability_bins["after_temperature"] = {k: scaled_bins[k] for k in bin_keys}
    coverage, risk = risk_coverage(probs, labels)
    return {
        "num_images": int(len(labels)),
        "sub": _level_scores(sub_pred, labels),
        "main": _level_scores(main_pred, main_true),
        "main_from_argmax": {k: argmax_scores[k] for k in ("accuracy", "macro_f1")},
        "per_class": _per_class(sub_pred, labels, taxonomy.sub_names),
        "per_main_class": _per_class(main_pred, main_true, taxonomy.main_names),
        "calibration": calibration,
        "reliability": reliability_bins,
        "aurc": aurc(probs, labels),
        "risk_at_coverage": {
            f"{c:.2f}": float(risk[max(0, math.ceil(c * len(risk)) - 1)]) for c in (0.5, 0.8, 0.9, 1.0)
        }
        if len(risk)
        else {},
        "confusion": {
            "sub": confusion_matrix(sub_pred, labels, taxonomy.num_sub).tolist(),
            "main": confusion_matrix(main_pred, main_true, taxonomy.num_main).tolist(),
        },
        "_coverage": coverage,  # for the plots; dropped before saving
        "_risk": risk,
    }


# ---- files ---------------------------------------------------------------------------------------
def write_predictions(
    path: Path, paths: list[str], logits: np.ndarray, labels: np.ndarray, taxonomy: Taxonomy
):
    """One CSV row per image: what it is, what the model said, and how sure it was."""
    probs = softmax(logits)
    main_probs = main_probabilities(probs, taxonomy)
    sub_names, main_names = taxonomy.sub_names, taxonomy.main_names
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["path", "label", "prediction", "confidence", "main_label", "main_prediction", "main_score"]
        )
        for i, rel in enumerate(paths):
            p, m = int(probs[i].argmax()), int(main_probs[i].argmax())
            writer.writerow(
                [
                    rel,
                    sub_names[labels[i]],
                    sub_names[p],
                    f"{probs[i, p]:.6f}",
                    main_names[taxonomy.sub_to_main[labels[i]]],
                    main_names[m],
                    f"{main_probs[i, m]:.6f}",
                ]
            )


def _split_of(dataset_dict, split: str, split_file: str | Path):
    if split not in dataset_dict:
        raise SplitError(
            f"Split {split!r} is not in manifest {split_file} (it has {list(dataset_dict)})."
            f"{did_you_mean(split, list(dataset_dict))} Pass --split with one of them."
        )
    if len(dataset_dict[split]) == 0:
        raise SplitError(
            f"Split {split!r} of manifest {split_file} has no usable image; nothing to evaluate."
        )
    return dataset_dict[split]


def evaluate_model(
    model_dir: str | Path,
    data_dir: str | Path,
    split_file: str | Path,
    *,
    split: str = "test",
    output_dir: str | Path,
    taxonomy: Taxonomy = MULTI_CANCER,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Run a member or ensemble folder on one split and write metrics.json, predictions.csv and plots.

    Returns the metrics dict saved in `<output_dir>/metrics.json` (schema in the README).
    """
    from ..data.folder import load_image_folder
    from ..models.inference import predict_logits

    protocol = read_split_protocol(split_file)  # cheap checks first: fail before loading anything
    model, processor, kind = load_model(model_dir, taxonomy)
    data = load_image_folder(data_dir, taxonomy, split_file=split_file)
    dataset = _split_of(data, split, split_file)
    logger.info("evaluating %s (%s) on %d %s images", model_dir, kind, len(dataset), split)
    logits, labels = predict_logits(model, processor, dataset, batch_size=batch_size, progress=progress)

    val_logits = val_labels = None
    if split != TEMPERATURE_SPLIT and TEMPERATURE_SPLIT in data and len(data[TEMPERATURE_SPLIT]):
        val_logits, val_labels = predict_logits(
            model, processor, data[TEMPERATURE_SPLIT], batch_size=batch_size, progress=progress
        )
    else:
        logger.warning("no separate %s split: ece_after_temperature is not reported", TEMPERATURE_SPLIT)

    summary = summarize_predictions(logits, labels, taxonomy, val_logits=val_logits, val_labels=val_labels)
    synthetic = is_synthetic(data_dir)
    metrics = {
        "model": str(model_dir),
        "model_kind": kind,
        "split": split,
        "split_protocol": protocol,
        "split_file": str(split_file),
        "data_dir": str(data_dir),
        "taxonomy": taxonomy.name,
        "synthetic_data": synthetic,
        "notice": DEMO_DATA_NOTICE if synthetic else None,
        **summary,
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / PREDICTIONS_FILE, list(dataset["path"]), logits, labels, taxonomy)
    metrics["predictions"] = PREDICTIONS_FILE
    metrics["plots"] = plots.write_all(metrics, taxonomy, out)
    for key in [k for k in metrics if k.startswith("_")]:
        metrics.pop(key)
    (out / METRICS_FILE).write_text(json.dumps(_jsonable(metrics), indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", out / METRICS_FILE)
    return metrics


def _jsonable(value):
    """NaN -> null (strict JSON), numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- text ----------------------------------------------------------------------------------------
def _fmt(value) -> str:
    return "   -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.3f}"


def format_table(metrics: dict) -> str:
    """A compact human summary of one metrics dict."""
    cal = metrics["calibration"]
    lines = [
        f"{metrics['model']} ({metrics['model_kind']}) on {metrics['split']} split "
        f"[{metrics.get('split_protocol') or '?'} protocol], {metrics['num_images']} images",
        f"{'level':<18}{'accuracy':>9}{'macro_f1':>9}{'bal_acc':>9}",
    ]
    for label, key in (("sub", "sub"), ("main (sum)", "main"), ("main (argmax)", "main_from_argmax")):
        row = metrics[key]
        lines.append(
            f"{label:<18}{_fmt(row['accuracy']):>9}{_fmt(row['macro_f1']):>9}{_fmt(row.get('balanced_accuracy')):>9}"
        )
    after = (
        f" -> {_fmt(cal['ece_after_temperature']).strip()} at T={cal['temperature']:.2f} (fitted on validation)"
        if cal.get("temperature")
        else ""
    )
    lines.append(
        f"ECE {_fmt(cal['ece']).strip()}{after}   NLL {_fmt(cal['nll']).strip()}   AURC {_fmt(metrics['aurc']).strip()}"
    )
    if metrics.get("notice"):
        lines.append(metrics["notice"])
    return "\n".join(lines)


def format_comparison(named_metrics: dict[str, dict]) -> str:
    """One row per model (members vs ensemble), both levels: the table `make demo` prints."""
    header = f"{'model':<16}{'sub_acc':>9}{'sub_F1':>9}{'main_acc':>9}{'main_F1':>9}{'NLL':>8}{'ECE':>8}{'AURC':>8}"
    lines = [header, "-" * len(header)]
    for name, m in named_metrics.items():
        lines.append(
            f"{name:<16}{_fmt(m['sub']['accuracy']):>9}{_fmt(m['sub']['macro_f1']):>9}"
            f"{_fmt(m['main']['accuracy']):>9}{_fmt(m['main']['macro_f1']):>9}"
            f"{_fmt(m['calibration']['nll']):>8}{_fmt(m['calibration']['ece']):>8}{_fmt(m['aurc']):>8}"
        )
    notices = {m.get("notice") for m in named_metrics.values()} - {None}
    lines.extend(sorted(notices))
    return "\n".join(lines)
