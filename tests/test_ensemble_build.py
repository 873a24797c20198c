"""Fitting temperatures/weights/threshold, and `cancernet ensemble` end to end on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _ensemble_helpers import save_members, tiny_members
from transformers import AutoModelForImageClassification, pipeline

from cancernet_hf.cli import main as cli_main
from cancernet_hf.constants import DEMO_DATA_NOTICE, ENSEMBLE_META_FILE, PIPELINE_TASK
from cancernet_hf.data.folder import scan_folder
from cancernet_hf.data.splits import make_split
from cancernet_hf.data.synthetic import generate_demo_dataset
from cancernet_hf.ensemble_build import (
    build_ensemble,
    fit_temperature,
    fit_uncertainty_threshold,
    fit_weights,
    mixture_log_probs,
    nll,
)
from cancernet_hf.errors import SplitError, UnknownModelError


def _overconfident(num: int = 600, classes: int = 5, factor: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z), logits reported as factor * z: the right temperature is `factor`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, (num, classes))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return factor * z, labels


def test_fitted_temperature_recovers_overconfidence_and_lowers_nll():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.2)
    before = nll(F.log_softmax(torch.as_tensor(logits), -1), labels)
    after = nll(F.log_softmax(torch.as_tensor(logits / t), -1), labels)
    assert after < before - 0.1


def test_temperature_stays_one_when_it_cannot_help():
    logits, labels = _overconfident(factor=1.0, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)
    # A single correct, confident sample: sharper is always better; T is clamped, never absurd.
    assert 0.05 <= fit_temperature(np.array([[10.0, 0.0]]), np.array([0])) <= 1.0


def test_weights_favour_the_informative_member_and_stay_on_the_simplex():
    logits, labels = _overconfident(factor=1.0, seed=2)
    good = F.log_softmax(torch.as_tensor(logits), -1).numpy()
    noise = F.log_softmax(torch.as_tensor(np.random.default_rng(3).normal(0, 2, logits.shape)), -1).numpy()
    weights = fit_weights(np.stack([noise, good, noise]), labels)
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    assert weights[1] > 0.8
    fitted = mixture_log_probs(np.stack([noise, good, noise]), [1, 1, 1], weights)
    equal = mixture_log_probs(np.stack([noise, good, noise]), [1, 1, 1], [1, 1, 1])
    assert nll(fitted, labels) < nll(equal, labels)


def test_uncertainty_threshold_is_the_validation_quantile_of_top_probability():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.99, 0.01]] * 25)
    threshold = fit_uncertainty_threshold(probs, 0.05)
    assert 0.55 <= threshold <= 0.6
    assert np.mean(probs.max(1) < threshold) <= 0.05
    with pytest.raises(ValueError, match="quantile"):
        fit_uncertainty_threshold(probs, 1.5)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    data = generate_demo_dataset(
        root / "data", per_class=4, size=40, seed=0, duplicate_groups=0, progress=False
    )
    scan = scan_folder(data.root, progress=False, num_workers=1)
    split = make_split(scan, protocol="random", fractions=(0.5, 0.25, 0.25), use_cache=False, progress=False)
    split_file = split.save(root / "split.json")
    member_dirs = save_members(tiny_members(), root / "members")
    return {"root": root, "data": data.root, "split": split_file, "members": member_dirs, "scan": scan}


@pytest.fixture(scope="module")
def built(workspace):
    out = workspace["root"] / "ensemble"
    args = ["ensemble", "--members", *map(str, workspace["members"]), "--data-dir", str(workspace["data"])]
    args += [
        "--split-file",
        str(workspace["split"]),
        "--output-dir",
        str(out),
        "--batch-size",
        "16",
        "--no-progress",
    ]
    assert cli_main(args) == 0
    return out


def test_cli_writes_the_whole_folder(built, capsys):
    names = {p.name for p in built.iterdir()}
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "configuration_cancernet.py",
        "modeling_cancernet.py",
        "pipeline_cancernet.py",
        ENSEMBLE_META_FILE,
    ):
        assert name in names
    config = json.loads((built / "config.json").read_text())
    assert (
        config["custom_pipelines"][PIPELINE_TASK]["impl"]
        == "pipeline_cancernet.CancerNetImageClassificationPipeline"
    )
    assert config["custom_pipelines"][PIPELINE_TASK]["pt"] == ["AutoModelForImageClassification"]
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModelForImageClassification"}


def test_fit_report_records_what_was_fitted_and_that_it_helped(built, workspace):
    meta = json.loads((built / ENSEMBLE_META_FILE).read_text())
    config = json.loads((built / "config.json").read_text())
    assert [m["name"] for m in meta["members"]] == ["vit", "convnext", "swin"]
    assert [m["temperature"] for m in meta["members"]] == pytest.approx(config["member_temperatures"])
    assert sum(m["weight"] for m in meta["members"]) == pytest.approx(1.0)
    assert [m["weight"] for m in meta["members"]] == pytest.approx(config["member_weights"])
    for member in meta["members"]:
        assert member["validation"]["nll_after"] <= member["validation"]["nll_before"] + 1e-9
        assert member["source"].endswith(member["name"])
    assert any(m["validation"]["nll_after"] < m["validation"]["nll_before"] - 1e-4 for m in meta["members"])
    ens = meta["ensemble"]["validation"]
    assert ens["nll_fitted_from_member_logits"] <= ens["nll_equal_weights_unit_temperature"] + 1e-9
    # The assembled model (its own preprocessing) agrees with the mixture of the members' own outputs.
    assert ens["nll"] == pytest.approx(ens["nll_fitted_from_member_logits"], abs=0.05)
    assert meta["uncertainty"]["threshold"] == pytest.approx(config["uncertainty_threshold"])
    assert meta["split"]["protocol"] == "random" and meta["split"]["fractions"] == pytest.approx(
        [0.5, 0.25, 0.25]
    )
    assert meta["synthetic_data"] is True and meta["notice"] == DEMO_DATA_NOTICE
    assert meta["num_validation_images"] == sum(
        1 for v in json.loads(workspace["split"].read_text())["files"].values() if v["split"] == "validation"
    )


def test_built_folder_predicts_with_the_fitted_threshold(built, workspace):
    model = AutoModelForImageClassification.from_pretrained(built, trust_remote_code=True)
    threshold = model.config.uncertainty_threshold
    pipe = pipeline(model=str(built), trust_remote_code=True)
    image = next((workspace["data"] / "Lymphoma" / "lymph_cll").glob("*.jpg"))
    result = pipe(str(image))
    assert result["uncertain"] == (result["sub_class"][0]["score"] < threshold)


def test_missing_validation_split_and_bad_members_are_refused(workspace, tmp_path):
    no_validation = make_split(
        workspace["scan"], protocol="random", fractions=(0.5, 0.0, 0.5), use_cache=False, progress=False
    ).save(tmp_path / "split.json")
    with pytest.raises(SplitError, match="no validation images"):
        build_ensemble(
            workspace["members"], workspace["data"], no_validation, tmp_path / "out", progress=False
        )
    with pytest.raises(UnknownModelError, match="holds no config.json"):
        build_ensemble([tmp_path], workspace["data"], workspace["split"], tmp_path / "out", progress=False)
    args = [
        "ensemble",
        "--members",
        str(tmp_path / "nope"),
        "--data-dir",
        str(workspace["data"]),
        "--split-file",
        str(workspace["split"]),
        "--output-dir",
        str(tmp_path / "out"),
    ]
    assert cli_main(args) == 2
