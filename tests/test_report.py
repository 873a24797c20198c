"""The evaluation report: hand-computed numbers on fixed predictions, and a real tiny member end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from _evaluation_helpers import LABELS, PROBS, TINY, make_member, make_tiny_dataset

from cancernet_hf.constants import DEMO_DATA_NOTICE, METRICS_FILE, SYNTH_MANIFEST_FILE
from cancernet_hf.errors import SplitError
from cancernet_hf.evaluation.plots import PLOT_FILES
from cancernet_hf.evaluation.report import (
    PREDICTIONS_FILE,
    evaluate_model,
    format_comparison,
    format_table,
    summarize_predictions,
)


def test_summary_matches_hand_computation():
    m = summarize_predictions(np.log(PROBS), LABELS, TINY)
    # Sub predictions [a1, a1, b1, b2, b2, a1] for truth [a1, a1, b1, b1, b2, b2].
    assert m["sub"] == pytest.approx(
        {"accuracy": 4 / 6, "macro_f1": (0.8 + 2 / 3 + 0.5) / 3, "balanced_accuracy": 2 / 3}
    )
    assert m["main"] == pytest.approx({"accuracy": 1.0, "macro_f1": 1.0, "balanced_accuracy": 1.0})
    assert m["main_from_argmax"] == pytest.approx({"accuracy": 5 / 6, "macro_f1": (0.8 + 6 / 7) / 2})
    assert m["per_class"]["b1"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["a1"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["confusion"]["sub"] == [[2, 0, 0], [0, 1, 1], [1, 0, 1]]
    assert m["confusion"]["main"] == [[2, 0], [0, 4]]
    cal = m["calibration"]
    # Top probabilities .7 .6 .8 .5 .8 .45 (right, right, right, wrong, right, wrong).
    assert cal["nll"] == pytest.approx(-np.mean(np.log([0.7, 0.6, 0.8, 0.3, 0.8, 0.25])))
    assert cal["ece"] == pytest.approx((0.3 + 0.4 + 0.4 + 0.5 + 0.45) / 6)  # 15 bins: .8/.8 share one
    assert cal["ece_after_temperature"] is None and cal["temperature"] is None
    # Most confident first: .8 .8 .7 .6 (right) .5 .45 (wrong) -> risks 0 0 0 0 1/5 2/6.
    assert m["aurc"] == pytest.approx((1 / 5 + 2 / 6) / 6)
    assert m["num_images"] == 6


def test_temperature_comes_from_validation_logits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), labels] += 1.0
    logits *= 6.0  # over-confident
    m = summarize_predictions(
        logits[200:], labels[200:], TINY, val_logits=logits[:200], val_labels=labels[:200]
    )
    cal = m["calibration"]
    assert cal["temperature"] > 2.0 and cal["temperature_split"] == "validation"
    assert cal["nll_after_temperature"] < cal["nll"]
    assert cal["ece_after_temperature"] < cal["ece"]


@pytest.fixture(scope="module")
def member_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data_dir, split_file = make_tiny_dataset(root / "data", synthetic=True)
    model_dir = make_member(root / "member")
    out = root / "report"
    metrics = evaluate_model(
        model_dir, data_dir, split_file, output_dir=out, taxonomy=TINY, batch_size=4, progress=False
    )
    return metrics, out, model_dir, data_dir


def test_evaluate_member_writes_all_files(member_report):
    metrics, out, model_dir, _ = member_report
    saved = json.loads((out / METRICS_FILE).read_text())
    assert saved["model_kind"] == "member" and saved["split"] == "test"
    assert saved["split_protocol"] == "group"
    assert saved["synthetic_data"] is True and saved["notice"] == DEMO_DATA_NOTICE
    assert saved["num_images"] == 6
    for key in ("accuracy", "macro_f1", "balanced_accuracy"):
        assert 0.0 <= saved["sub"][key] <= 1.0 and 0.0 <= saved["main"][key] <= 1.0
    assert set(saved["per_class"]) == set(TINY.sub_names)
    assert set(saved["calibration"]) >= {"ece", "ece_after_temperature", "temperature", "nll"}
    assert saved["calibration"]["temperature_split"] == "validation"
    assert math.isfinite(saved["aurc"])
    assert saved["plots"] == PLOT_FILES
    for name in saved["plots"].values():
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    assert "SYNTHETIC" in format_table(metrics)
    assert "member" in format_comparison({"member": metrics})


def test_evaluate_numbers_match_predictions(member_report):
    from transformers import pipeline

    metrics, out, model_dir, data_dir = member_report
    rows = list(csv.DictReader((out / PREDICTIONS_FILE).open()))
    assert len(rows) == metrics["num_images"]
    acc = np.mean([r["label"] == r["prediction"] for r in rows])
    assert metrics["sub"]["accuracy"] == pytest.approx(acc)
    main_acc = np.mean([r["main_label"] == r["main_prediction"] for r in rows])
    assert metrics["main"]["accuracy"] == pytest.approx(main_acc)
    assert sum(v["support"] for v in metrics["per_class"].values()) == len(rows)
    assert np.sum(metrics["confusion"]["sub"]) == len(rows)
    # The stock pipeline on the same files gives the same top-1 and confidence: evaluation and serving
    # preprocess the same way.
    pipe = pipeline("image-classification", model=str(model_dir))
    for row in rows:
        top = pipe(str(data_dir / row["path"]), top_k=2)
        assert top[0]["score"] == pytest.approx(float(row["confidence"]), abs=1e-4)
        if top[0]["score"] - top[1]["score"] > 1e-3:
            assert top[0]["label"] == row["prediction"]


def test_evaluate_errors(tmp_path, member_report):
    _, _, model_dir, data_dir = member_report
    with pytest.raises(SplitError, match="does not exist"):
        evaluate_model(model_dir, data_dir, tmp_path / "nope.json", output_dir=tmp_path / "r", taxonomy=TINY)
    split_file = data_dir.parent / "split.json"
    with pytest.raises(SplitError, match="Did you mean 'test'"):
        evaluate_model(
            model_dir, data_dir, split_file, split="tset", output_dir=tmp_path / "r", taxonomy=TINY
        )


def test_not_synthetic_without_manifest(tmp_path):
    from cancernet_hf.data.synthetic import is_synthetic

    assert not is_synthetic(tmp_path)
    (tmp_path / SYNTH_MANIFEST_FILE).write_text("{}")
    assert is_synthetic(tmp_path)


def test_evaluate_ensemble_matches_its_pipeline(tmp_path, member_report):
    from _evaluation_helpers import make_ensemble
    from transformers import pipeline

    _, _, _, data_dir = member_report
    ensemble_dir = make_ensemble(tmp_path / "ensemble")
    out = tmp_path / "report"
    metrics = evaluate_model(
        ensemble_dir, data_dir, data_dir.parent / "split.json", output_dir=out, taxonomy=TINY, progress=False
    )
    assert metrics["model_kind"] == "ensemble"
    assert json.loads((out / METRICS_FILE).read_text())["model_kind"] == "ensemble"
    # Evaluation (logits = log ensemble probabilities) and the custom pipeline agree on every test image.
    pipe = pipeline(model=str(ensemble_dir), trust_remote_code=True)
    for row in csv.DictReader((out / PREDICTIONS_FILE).open()):
        result = pipe(str(data_dir / row["path"]), top_k=1)
        assert result["sub_class"][0]["score"] == pytest.approx(float(row["confidence"]), abs=1e-4)
        assert result["main_class"][0]["label"] == row["main_prediction"]
