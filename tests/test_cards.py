"""Cards: metadata built from metrics.json (pure), templates rendered, and the round trip through ModelCard.load."""

from __future__ import annotations

import copy
import json

import pytest
from hub_fixtures import make_data_dir, make_member, make_report, split_manifest
from huggingface_hub import DatasetCard, EvalResult, ModelCard

from cancernet_hf.constants import DEMO_DATA_NOTICE, METRICS_FILE
from cancernet_hf.errors import PublishError
from cancernet_hf.hub import cards
from cancernet_hf.taxonomy import MULTI_CANCER


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    data = make_data_dir(root / "data", per_class=3)
    member = make_member(root / "run" / "members" / "vit-tiny", data)
    report = make_report(root / "run" / "reports" / "vit-tiny", model=str(member))
    return {"data": data, "member": member, "report": report}


@pytest.fixture
def report_metrics(run_dirs):
    return json.loads((run_dirs["report"] / METRICS_FILE).read_text())


# ---- pure metadata ---------------------------------------------------------------------------------------


def test_card_data_comes_from_metrics(report_metrics):
    data = cards.build_card_data(
        report_metrics, kind="member", model_name="cn-vit", base_models=["google/vit-base-patch16-224-in21k"]
    )
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "image-classification"
    assert data.license == cards.DEFAULT_LICENSE
    assert data.base_model == "google/vit-base-patch16-224-in21k"
    assert {"medical", "histopathology"} <= set(data.tags)
    assert "custom_code" not in data.tags
    assert data.metrics == ["accuracy", "f1"]
    values = {(r.metric_name.split()[1], r.metric_type): r.metric_value for r in data.eval_results}
    assert values[("sub-class", "accuracy")] == report_metrics["sub"]["accuracy"]
    assert values[("sub-class", "f1")] == report_metrics["sub"]["macro_f1"]
    assert values[("main-class", "accuracy")] == report_metrics["main"]["accuracy"]
    assert values[("main-class", "f1")] == report_metrics["main"]["macro_f1"]
    assert values[("sub-class", "ece")] == report_metrics["calibration"]["ece"]
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    assert all(r.dataset_args == {"split_protocol": "group"} for r in data.eval_results)


def test_card_data_follows_the_numbers_not_a_template(report_metrics):
    changed = copy.deepcopy(report_metrics)
    changed["sub"]["accuracy"] = 0.87654321
    changed["split"] = "validation"
    data = cards.build_card_data(changed, kind="member", model_name="x")
    sub_acc = next(r for r in data.eval_results if r.metric_name.startswith("Validation sub-class accuracy"))
    assert sub_acc.metric_value == 0.8765
    assert sub_acc.dataset_split == "validation"


def test_ensemble_metadata_and_base_models(report_metrics):
    data = cards.build_card_data(
        report_metrics,
        kind="ensemble",
        model_name="ens",
        base_models=["org/a", "org/b", "org/a"],
        synthetic=True,
    )
    assert {"custom_code", "ensemble", "synthetic-data"} <= set(data.tags)
    assert data.base_model == ["org/a", "org/b"]
    assert data.datasets == ["multi-cancer-synthetic-demo"]


def test_hub_base_models_keeps_only_hub_ids(tmp_path):
    (tmp_path / "local").mkdir()
    found = cards.hub_base_models(
        ["vit-tiny", "google/vit-base-patch16-224", str(tmp_path / "local"), None, "a/b/c"]
    )
    assert found == ["google/vit-base-patch16-224"]


def test_unknown_kind_is_refused(report_metrics):
    with pytest.raises(PublishError, match="Unknown model kind"):
        cards.build_card_data(report_metrics, kind="teacher", model_name="x")


@pytest.mark.parametrize(
    "raw, split, sub_acc",
    [
        # a training run's metrics.json (blocks per split)
        (
            {
                "split_protocol": "group",
                "validation": {
                    "num_images": 5,
                    "sub": {"accuracy": 0.5, "macro_f1": 0.4},
                    "main": {"accuracy": 0.9, "macro_f1": 0.8},
                },
                "test": {
                    "num_images": 6,
                    "sub": {"accuracy": 0.25, "macro_f1": 0.2},
                    "main": {"accuracy": 0.7, "macro_f1": 0.6},
                },
            },
            "test",
            0.25,
        ),
        # Trainer-style prefixed keys, validation only
        (
            {
                "eval_sub_accuracy": 0.3,
                "eval_sub_macro_f1": 0.2,
                "eval_main_accuracy": 0.6,
                "eval_main_macro_f1": 0.5,
            },
            "validation",
            0.3,
        ),
    ],
)
def test_normalise_training_metrics(raw, split, sub_acc):
    out = cards.normalise_metrics(raw)
    assert out["split"] == split
    assert out["sub"]["accuracy"] == sub_acc
    assert set(out["main"]) >= {"accuracy", "macro_f1"}


def test_metrics_without_scores_are_refused():
    with pytest.raises(PublishError, match="no sub- and main-class scores"):
        cards.normalise_metrics({"loss": 1.0})


# ---- rendering and round trip ----------------------------------------------------------------------------


def _render(run_dirs, **kwargs):
    run = cards.read_run(run_dirs["member"], kind="member", report_dir=run_dirs["report"])
    card = cards.render_model_card(
        run, repo_id="org/cn-vit", plot_paths={"confusion_matrix": "plots/cm.png"}, **kwargs
    )
    return run, card


def test_card_round_trips_through_model_card_load(run_dirs, tmp_path):
    run, card = _render(run_dirs)
    path = tmp_path / "README.md"
    card.save(path)
    loaded = ModelCard.load(path)
    expected = cards.build_card_data(
        run.metrics, kind="member", model_name="cn-vit", synthetic=True
    ).eval_results
    assert loaded.data.eval_results == expected
    assert all(isinstance(r, EvalResult) for r in loaded.data.eval_results)
    assert loaded.data.model_name == "cn-vit"
    assert loaded.data.library_name == "transformers"
    assert loaded.data.pipeline_tag == "image-classification"
    assert loaded.data.datasets == ["multi-cancer-synthetic-demo"]
    assert "base_model" not in loaded.data.to_dict()  # a preset (random init) has no Hub base model


def test_card_body_is_generated_from_the_run(run_dirs):
    run, card = _render(run_dirs)
    text = card.text
    assert DEMO_DATA_NOTICE in text  # synthetic data says so, prominently (before the description)
    assert text.index(DEMO_DATA_NOTICE) < text.index("## Model description")
    assert "not a medical device" in text.lower()
    assert "### Out-of-scope use" in text
    # counts per class from split.json: 3 images per class -> train 1, validation 1, test 1
    assert (
        "| `lung_scc` | Lung squamous cell carcinoma | Lung and Colon Cancer | H&E histopathology | 1 | 1 | 1 |"
        in text
    )
    assert "### Split protocol: group" in text and "leak" in text
    # hyper-parameters incl. accumulation and precision, and the effective batch size 8 x 2 x 1
    assert "| `gradient_accumulation_steps` | 2 |" in text
    assert "| effective batch size (per device x accumulation x processes) | 16 |" in text
    assert "| precision | fp32 (no mixed precision) |" in text
    # evaluation table with the report's numbers, per class, calibration and plots as files
    assert "| Sub-class | 26 | 0.1154 | 0.0821 | 0.1154 |" in text
    assert "expected calibration error 0.0512" in text
    assert "![Confusion matrix](plots/cm.png)" in text
    # usage: stock pipeline with a pinned revision, no remote code for a member
    assert 'pipeline("image-classification", model="org/cn-vit", revision="<commit-sha>")' in text
    assert "trust_remote_code=True" not in text
    # limitations name each organ's source dataset; the dataset is cited
    for source in MULTI_CANCER.sources.values():
        assert source in text
    assert "Modality shortcuts" in text and "Augmentation duplicates" in text
    assert "@misc{" in text


def test_real_data_card_has_no_synthetic_notice_and_warns_on_random_split(run_dirs, tmp_path):
    report = tmp_path / "report"
    make_report(report, model="m", synthetic=False)
    metrics = json.loads((report / METRICS_FILE).read_text())
    metrics["split_protocol"] = "random"
    (report / METRICS_FILE).write_text(json.dumps(metrics))
    run = cards.read_run(run_dirs["member"], kind="member", report_dir=report)
    run.synthetic = False
    card = cards.render_model_card(run, repo_id="org/cn-vit")
    assert DEMO_DATA_NOTICE not in card.text
    assert "synthetic-data" not in card.data.tags
    assert "inflated by leakage" in card.text
    assert card.data.eval_results[0].dataset_args == {"split_protocol": "random"}


def test_read_run_refuses_a_report_of_another_kind(run_dirs, tmp_path):
    report = make_report(tmp_path / "report", model="ens", kind="ensemble")
    with pytest.raises(PublishError, match="evaluates a ensemble"):
        cards.read_run(run_dirs["member"], kind="member", report_dir=report)


def test_read_run_refuses_labels_of_another_taxonomy(run_dirs, tmp_path):
    other = MULTI_CANCER.from_dict({"main_classes": ["A"], "sub_classes": [{"name": "a", "main": "A"}]})
    with pytest.raises(PublishError, match="not the sub-classes of taxonomy"):
        cards.read_run(run_dirs["member"], kind="member", report_dir=run_dirs["report"], taxonomy=other)


def test_dataset_card_round_trips(run_dirs, tmp_path):
    counts = {name: i for i, name in enumerate(MULTI_CANCER.sub_names)}
    split = split_manifest(run_dirs["data"])
    card = cards.render_dataset_card(
        counts, pretty_name="My cancer images", split=split, synthetic=False, bad_files=2
    )
    card.save(tmp_path / "README.md")
    loaded = DatasetCard.load(tmp_path / "README.md")
    assert loaded.data.pretty_name == "My cancer images"
    assert loaded.data.task_categories == ["image-classification"]
    assert loaded.data.size_categories == ["n<1K"]
    text = loaded.text
    assert f"**{sum(counts.values())}**" in text
    assert "| `oral_scc` | Oral squamous cell carcinoma | Oral Cancer | H&E histopathology |" in text
    assert "2 unreadable or unusable files" in text
    assert "pituitary" in text and "Augmented duplicates" in text
    assert "protocol **group**" in text


def test_template_dir_can_be_overridden(tmp_path, monkeypatch):
    monkeypatch.setenv(cards.ENV_TEMPLATES, str(tmp_path))
    assert cards.template_dir() != tmp_path  # an empty folder is skipped: the project's templates are used
    (tmp_path / "member_card.md").write_text("---\n{{ card_data }}\n---\nhello {{ model_name }}\n")
    assert cards.template_dir() == tmp_path
