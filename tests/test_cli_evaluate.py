"""`cancernet evaluate` and `cancernet predict` on a tiny member: outputs and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _evaluation_helpers import TINY, make_member, make_tiny_dataset

from cancernet_hf.cli import main
from cancernet_hf.constants import METRICS_FILE


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_eval")
    data_dir, split_file = make_tiny_dataset(root / "data")
    model_dir = make_member(root / "member")
    taxonomy_file = TINY.save_json(root / "tiny.json")
    return root, data_dir, split_file, model_dir, taxonomy_file


def test_evaluate_command(setup, capsys):
    root, data_dir, split_file, model_dir, taxonomy_file = setup
    out = root / "report"
    argv = [
        "evaluate",
        "--model",
        str(model_dir),
        "--data-dir",
        str(data_dir),
        "--split-file",
        str(split_file),
    ]
    argv += ["--output-dir", str(out), "--taxonomy", str(taxonomy_file), "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "main (sum)" in printed and "macro_f1" in printed
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["synthetic_data"] is False and metrics["notice"] is None
    assert all((out / f).is_file() for f in metrics["plots"].values())


def test_evaluate_command_errors(setup, capsys, tmp_path):
    root, data_dir, split_file, model_dir, taxonomy_file = setup
    base = ["evaluate", "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "r")]
    # Missing manifest, a folder that is not a model, a taxonomy the model was not trained with: one line, exit 2.
    tax = ["--taxonomy", str(taxonomy_file)]
    assert main([*base, *tax, "--model", str(model_dir), "--split-file", str(tmp_path / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*base, *tax, "--model", str(tmp_path), "--split-file", str(split_file)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main([*base, "--model", str(model_dir), "--split-file", str(split_file)]) == 2
    assert "--taxonomy" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: bad value
        main([*base, "--model", str(model_dir), "--split-file", str(split_file), "--batch-size", "0"])
    assert exc.value.code == 2


def test_predict_member_json(setup, capsys):
    root, data_dir, _, model_dir, taxonomy_file = setup
    one = data_dir / "A" / "a1" / "a1_0.png"
    argv = ["predict", "--model", str(model_dir), str(one), str(data_dir / "B"), "--json", "--top-k", "2"]
    assert main([*argv, "--taxonomy", str(taxonomy_file)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in lines][0] == str(one)
    assert len(lines) == 1 + 8  # the file, then the folder's 8 images (recursive, sorted)
    for r in lines:
        assert r["model_kind"] == "member"
        assert len(r["sub_class"]) == 2 and len(r["main_class"]) == 2
        assert r["sub_class"][0]["score"] >= r["sub_class"][1]["score"]
        assert r["sub_class"][0]["name"] == TINY.sub(r["sub_class"][0]["label"]).human_name
        # Main score = sum of its sub-classes; with 2 main classes both are listed and sum to 1.
        assert sum(m["score"] for m in r["main_class"]) == pytest.approx(1.0, abs=1e-5)
        top_sub = r["sub_class"][0]
        main_of_top = next(m for m in r["main_class"] if m["label"] == TINY.main_of(top_sub["label"]))
        assert main_of_top["score"] >= top_sub["score"] - 1e-6


def test_predict_human_output_and_exit_codes(setup, capsys, tmp_path):
    root, data_dir, _, model_dir, taxonomy_file = setup
    good = data_dir / "A" / "a1" / "a1_0.png"
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    tax = ["--taxonomy", str(taxonomy_file)]
    # A bad file among good ones: the good ones are predicted, the bad one named, exit 1.
    assert main(["predict", "--model", str(model_dir), str(good), str(bad), *tax]) == 1
    out = capsys.readouterr().out
    assert "sub :" in out and "main:" in out and "notes.jpg" in out and "error:" in out
    # --tta needs the ensemble; missing input; wrong taxonomy: exit 2.
    assert main(["predict", "--model", str(model_dir), str(good), "--tta", *tax]) == 2
    assert "ensemble" in capsys.readouterr().err
    assert main(["predict", "--model", str(model_dir), str(tmp_path / "missing.png"), *tax]) == 2
    assert main(["predict", "--model", str(model_dir), str(good)]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--model", str(model_dir), str(empty), *tax]) == 2
    assert "no image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(model_dir), str(good), "--top-k", "0"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_predict_console_script(setup):
    root, data_dir, _, model_dir, taxonomy_file = setup
    cmd = [sys.executable, "-c", "import sys; from cancernet_hf.cli import main; sys.exit(main())"]
    cmd += [
        "predict",
        "--model",
        str(model_dir),
        str(data_dir / "A"),
        "--json",
        "--taxonomy",
        str(taxonomy_file),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 4 and all(r["sub_class"] for r in results)


def test_predict_ensemble_with_tta(setup, capsys):
    from _evaluation_helpers import make_ensemble

    root, data_dir, _, _, taxonomy_file = setup
    ensemble_dir = make_ensemble(root / "ensemble")
    argv = ["predict", "--model", str(ensemble_dir), str(data_dir / "A"), "--tta", "--json", "--top-k", "2"]
    assert main(argv) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(results) == 4
    for r in results:
        assert r["model_kind"] == "ensemble" and len(r["sub_class"]) == 2
        assert {"members", "agreement", "entropy", "uncertain", "tta"} <= set(r)
        # TTA runs only where the predicted sub-class is microscopy (a1), never for CT (b1, b2).
        assert r["tta"] == TINY.sub(r["sub_class"][0]["label"]).dihedral
    assert main(["predict", "--model", str(ensemble_dir), str(data_dir / "B" / "b1" / "b1_0.png")]) == 0
    assert "ensemble: agreement" in capsys.readouterr().out
