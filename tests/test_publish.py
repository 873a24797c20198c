"""Staging: exactly the expected files, clear errors, the Space and dataset card, and `cancernet push --dry-run`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hub_fixtures import make_data_dir, make_ensemble, make_member, make_report
from huggingface_hub import ModelCard, SpaceCard

from cancernet_hf.cli import main as cli_main
from cancernet_hf.constants import METRICS_FILE
from cancernet_hf.errors import PublishError
from cancernet_hf.hub import publish as hub

ROOT = Path(__file__).resolve().parents[1]
MEMBER_FILES = [
    "README.md",
    "config.json",
    "metrics.json",
    "model.safetensors",
    "plots/confusion_matrix.png",
    "plots/reliability_diagram.png",
    "preprocessor_config.json",
    "run_config.json",
    "split.json",
    "trainer_state.json",
]


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    data = make_data_dir(root / "data", per_class=3)
    member = make_member(root / "run" / "members" / "vit-tiny", data)
    report = make_report(root / "run" / "reports" / "vit-tiny", model=str(member))
    return {"root": root, "data": data, "member": member, "report": report}


@pytest.fixture(scope="module")
def ensemble(runs):
    """E's ensemble from two tiny members (skips while ensemble_build is not in the checkout)."""
    second = make_member(runs["root"] / "run" / "members" / "vit-tiny-b", runs["data"], seed=1)
    folder = make_ensemble(runs["root"] / "run" / "ensemble", [runs["member"], second], runs["data"])
    if folder is None:
        pytest.skip("cancernet_hf.ensemble_build is not there yet")
    report = make_report(runs["root"] / "run" / "reports" / "ensemble", model=str(folder), kind="ensemble")
    return {"dir": folder, "report": report}


# ---- members -------------------------------------------------------------------------------------------


def test_member_stage_holds_exactly_the_repo_files(runs, tmp_path):
    stage = hub.stage_model_repo(
        runs["member"], tmp_path / "stage", kind="member", repo_id="org/cn-vit", report_dir=runs["report"]
    )
    assert listing(stage) == MEMBER_FILES
    card = ModelCard.load(stage / "README.md")
    assert card.data.eval_results[0].metric_value == 0.1154  # from the report, not the training metrics
    metrics = json.loads((stage / METRICS_FILE).read_text())
    assert metrics["plots"] == {
        "confusion_matrix": "plots/confusion_matrix.png",
        "reliability_diagram": "plots/reliability_diagram.png",
    }
    # weights are byte copies; local absolute paths do not leak into the repo
    assert (stage / "model.safetensors").read_bytes() == (runs["member"] / "model.safetensors").read_bytes()
    for name in ("run_config.json", "trainer_state.json", "split.json", "metrics.json"):
        text = (stage / name).read_text()
        assert str(runs["root"]) not in text, name
    assert (
        json.loads((stage / "split.json").read_text())["files"]
        == json.loads((runs["member"] / "split.json").read_text())["files"]
    )


def test_member_without_report_uses_the_training_metrics(runs, tmp_path):
    stage = hub.stage_model_repo(runs["member"], tmp_path / "stage", kind="member", repo_id="org/cn-vit")
    assert listing(stage) == [f for f in MEMBER_FILES if not f.startswith("plots/")]
    results = ModelCard.load(stage / "README.md").data.eval_results
    assert results[0].metric_value == 0.0769 and results[0].dataset_split == "test"


def test_stage_with_a_real_evaluation_report(runs, tmp_path):
    """The report `cancernet evaluate` writes (helper F's code) is what the card reads."""
    report_module = pytest.importorskip("cancernet_hf.evaluation.report")
    report = tmp_path / "report"
    report_module.evaluate_model(
        runs["member"], runs["data"], runs["member"] / "split.json", output_dir=report, progress=False
    )
    stage = hub.stage_model_repo(
        runs["member"], tmp_path / "stage", kind="member", repo_id="org/cn-vit", report_dir=report
    )
    metrics = json.loads((report / METRICS_FILE).read_text())
    plots = sorted(f"plots/{name}" for name in metrics["plots"].values())
    assert listing(stage) == sorted([f for f in MEMBER_FILES if not f.startswith("plots/")] + plots)
    card = ModelCard.load(stage / "README.md")
    by_name = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert by_name["Test sub-class accuracy (26 classes)"] == round(metrics["sub"]["accuracy"], 4)
    assert by_name["Test main-class macro F1 (8 classes)"] == round(metrics["main"]["macro_f1"], 4)
    for path in plots:
        assert f"]({path})" in card.text


@pytest.mark.parametrize(
    "repo_id",
    [
        "no-namespace",
        "org/",
        "/name",
        "org/na me",
        "org/name/extra",
        "org/-name",
        "org/na--me",
        "org/" + "x" * 97,
    ],
)
def test_malformed_repo_ids_are_refused(runs, tmp_path, repo_id):
    with pytest.raises(PublishError, match="malformed"):
        hub.stage_model_repo(runs["member"], tmp_path / "stage", kind="member", repo_id=repo_id)
    assert not (tmp_path / "stage").exists()  # nothing staged before the check


def test_non_empty_stage_dir_is_refused_unless_overwriting_a_previous_stage(runs, tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "notes.txt").write_text("mine")
    with pytest.raises(PublishError, match="not empty"):
        hub.stage_model_repo(runs["member"], stage, kind="member", repo_id="org/cn-vit")
    with pytest.raises(PublishError, match="not a previous staging"):
        hub.stage_model_repo(runs["member"], stage, kind="member", repo_id="org/cn-vit", overwrite=True)
    assert (stage / "notes.txt").read_text() == "mine"
    (stage / "notes.txt").unlink()
    hub.stage_model_repo(runs["member"], stage, kind="member", repo_id="org/cn-vit")
    (stage / "stale.bin").write_text("old")
    hub.stage_model_repo(runs["member"], stage, kind="member", repo_id="org/cn-vit", overwrite=True)
    assert "stale.bin" not in listing(stage)


def test_stage_inside_the_model_folder_is_refused(runs):
    with pytest.raises(PublishError, match="overlaps"):
        hub.stage_model_repo(runs["member"], runs["member"] / "hub", kind="member", repo_id="org/cn-vit")


@pytest.mark.parametrize("missing", ["preprocessor_config.json", "model.safetensors", "config.json"])
def test_missing_model_files_are_named(runs, tmp_path, missing):
    broken = tmp_path / "member"
    shutil.copytree(runs["member"], broken)
    (broken / missing).unlink()
    with pytest.raises(PublishError, match=missing.replace(".", r"\.")):
        hub.stage_model_repo(broken, tmp_path / "stage", kind="member", repo_id="org/cn-vit")


def test_member_folder_pushed_as_ensemble_is_refused(runs, tmp_path):
    with pytest.raises(PublishError, match="--kind member"):
        hub.stage_model_repo(runs["member"], tmp_path / "stage", kind="ensemble", repo_id="org/cn-vit")


def test_publish_without_token_is_refused(runs, tmp_path, monkeypatch):
    stage = hub.stage_model_repo(runs["member"], tmp_path / "stage", kind="member", repo_id="org/cn-vit")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(PublishError, match="No Hugging Face token"):
        hub.publish(stage, "org/cn-vit")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE"):
        hub.publish(stage, "org/cn-vit", token="dummy")
    with pytest.raises(PublishError, match="not a staged repo"):
        hub.publish(tmp_path, "org/cn-vit", token="dummy")


# ---- ensemble ------------------------------------------------------------------------------------------


def test_ensemble_stage_holds_weights_remote_code_and_card(ensemble, tmp_path):
    stage = hub.stage_model_repo(
        ensemble["dir"],
        tmp_path / "stage",
        kind="ensemble",
        repo_id="org/cn-ensemble",
        report_dir=ensemble["report"],
        member_repo_ids=["org/cn-vit", "org/cn-vit-b"],
    )
    code = sorted(p.name for p in ensemble["dir"].glob("*.py"))
    assert code  # the remote code files E writes
    expected = sorted(
        [
            "README.md",
            "cancernet.json",
            "config.json",
            "metrics.json",
            "model.safetensors",
            "plots/confusion_matrix.png",
            "plots/reliability_diagram.png",
            "preprocessor_config.json",
            "split.json",  # the manifest the ensemble was fitted with
            *code,
        ]
    )
    assert listing(stage) == expected
    card = ModelCard.load(stage / "README.md")
    assert "custom_code" in card.data.tags
    assert card.data.base_model == ["org/cn-vit", "org/cn-vit-b"]
    config = json.loads((ensemble["dir"] / "config.json").read_text())
    weights = config["member_weights"]
    for name, weight in zip(config["member_names"], weights):
        assert f"| `{name}` |" in card.text and f"| {round(weight / sum(weights), 4)} |" in card.text
    assert 'pipeline(model="org/cn-ensemble", trust_remote_code=True, revision="<commit-sha>")' in card.text
    assert (
        'pipeline("image-classification", model="org/cn-vit")' in card.text
    )  # plain members, no remote code


@pytest.mark.slow
def test_staged_ensemble_loads_in_a_fresh_process(ensemble, runs, tmp_path):
    stage = hub.stage_model_repo(
        ensemble["dir"],
        tmp_path / "stage",
        kind="ensemble",
        repo_id="org/cn-ensemble",
        report_dir=ensemble["report"],
    )
    image = next(runs["data"].rglob("*.jpg"))
    script = textwrap.dedent(
        f"""
        import json, sys
        from transformers import pipeline
        pipe = pipeline(model={str(stage)!r}, trust_remote_code=True)
        out = pipe({str(image)!r})
        out = out[0] if isinstance(out, list) else out
        print(json.dumps({{"task": pipe.task, "sub": out["sub_class"][0], "main": out["main_class"][0]}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task"] == "cancer-image-classification"
    config = json.loads((stage / "config.json").read_text())
    assert result["sub"]["label"] in config["label2id"]
    assert result["main"]["label"] in config["main_names"]
    assert result["main"]["score"] >= result["sub"]["score"] - 1e-6  # a main class sums its sub-classes


# ---- Space and dataset card ----------------------------------------------------------------------------


def _fake_space(root: Path) -> Path:
    root.mkdir()
    (root / "README.md").write_text(
        "---\ntitle: CancerNet\nsdk: gradio\napp_file: app.py\nmodels:\n- someone/else\n---\n\n# CancerNet\n"
    )
    (root / "app.py").write_text("print('hi')\n")
    (root / "requirements.txt").write_text("transformers\n")
    for junk in ("__pycache__/app.cpython-311.pyc", ".gradio/cache.bin", "flagged/log.csv", "x.pyc"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("junk")
    (root / "examples").mkdir()
    (root / "examples" / "a.jpg").write_bytes(b"\xff\xd8jpeg")
    return root


def test_space_stage_copies_the_app_without_caches_and_points_at_the_model(tmp_path):
    src = _fake_space(tmp_path / "space")
    stage = hub.stage_space(src, tmp_path / "stage", model_repo_id="org/cn-ensemble")
    assert listing(stage) == ["README.md", "app.py", "examples/a.jpg", "requirements.txt"]
    card = SpaceCard.load(stage / "README.md")
    assert card.data.models == ["org/cn-ensemble"]
    assert card.data.sdk == "gradio" and card.data.title == "CancerNet"
    assert "# CancerNet" in card.text
    assert "someone/else" in (src / "README.md").read_text()  # the source is untouched


def test_space_without_readme_is_refused(tmp_path):
    (tmp_path / "space").mkdir()
    with pytest.raises(PublishError, match="README"):
        hub.stage_space(tmp_path / "space", tmp_path / "stage", model_repo_id="org/cn-ensemble")


def test_the_project_space_stages(tmp_path):
    src = ROOT / "spaces" / "cancernet"
    if not (src / "README.md").is_file():
        pytest.skip("spaces/cancernet has no README.md yet")
    stage = hub.stage_space(src, tmp_path / "stage", model_repo_id="org/cn-ensemble")
    files = listing(stage)
    assert "app.py" in files and "README.md" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert SpaceCard.load(stage / "README.md").data.models == ["org/cn-ensemble"]


def test_dataset_card_stage(runs, tmp_path):
    stage = hub.stage_dataset_card(
        runs["data"],
        tmp_path / "stage",
        repo_id="org/cancer-images",
        split_file=runs["member"] / "split.json",
    )
    assert listing(stage) == ["README.md", "split.json"]
    text = (stage / "README.md").read_text()
    assert "**78**" in text  # 26 classes x 3 images, counted by scanning the folder
    assert "SYNTHETIC DEMO DATA" in text  # the folder carries the synthetic manifest


# ---- CLI -----------------------------------------------------------------------------------------------


def test_cli_dry_run_stages_model_and_space_and_prints_the_upload_commands(runs, tmp_path, capsys):
    space = _fake_space(tmp_path / "space")
    code = cli_main(
        [
            "push",
            "--model",
            str(runs["member"]),
            "--repo-id",
            "org/cn-vit",
            "--report",
            str(runs["report"]),
            "--stage-dir",
            str(tmp_path / "hub" / "cn-vit"),
            "--space",
            "org/cancernet",
            "--space-dir",
            str(space),
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert listing(tmp_path / "hub" / "cn-vit") == MEMBER_FILES  # kind detected: member
    assert listing(tmp_path / "hub" / "cancernet") == [
        "README.md",
        "app.py",
        "examples/a.jpg",
        "requirements.txt",
    ]
    assert f"cancernet push --staged {tmp_path / 'hub' / 'cn-vit'} --repo-id org/cn-vit" in out
    assert "--repo-type space" in out


def test_cli_reports_errors_in_one_line(runs, tmp_path, capsys):
    code = cli_main(["push", "--model", str(runs["member"]), "--repo-id", "bad id", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cancernet push: error: Repo id 'bad id' is malformed" in err
