"""`cancernet data validate|synth|split`: exit codes, printed summary, report JSON, the chain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cancernet_hf.cli import main
from cancernet_hf.constants import SPLITS
from cancernet_hf.data.folder import load_image_folder


def test_validate_usable_dataset_with_bad_files_exits_0_and_writes_report(tmp_path, imgs, capsys):
    base = imgs.build_tree(tmp_path / "Multi Cancer", wrapper="Multi Cancer")
    bad_dir = base / "Multi Cancer" / "ALL" / "all_benign"
    for name in ("zero.jpg", "truncated.jpg", "bomb.png"):
        imgs.bad_files[name][0](bad_dir / name)
    report = tmp_path / "out" / "scan.json"
    rc = main(["data", "validate", str(base), "--report", str(report), "--workers", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 unusable files will be skipped" in out and "Status: USABLE" in out
    assert "inside wrapper folder 'Multi Cancer'" in out
    data = json.loads(report.read_text())
    assert data["usable"] is True and data["num_usable"] == 10 and data["num_bad"] == 3
    assert data["bad_by_reason"] == {"absurd dimensions": 1, "truncated or corrupt": 1, "zero-byte": 1}
    assert data["counts_main"]["ALL"] == 4 and data["counts_sub"]["all_benign"] == 2
    assert data["root"].endswith("Multi Cancer/Multi Cancer")


def test_validate_unusable_dataset_exits_1(tmp_path, imgs, capsys):
    base = tmp_path / "d"
    imgs.write(base / "Oral Cancer" / "oral_scc" / "a.jpg", fmt="JPEG")
    (base / "Oral Cancer" / "oral_normal").mkdir()
    imgs.bad_files["text.jpg"][0](base / "Oral Cancer" / "oral_normal" / "text.jpg")
    report = tmp_path / "scan.json"
    assert main(["data", "validate", str(base), "--report", str(report), "--no-progress"]) == 1
    assert "NOT USABLE" in capsys.readouterr().out
    assert json.loads(report.read_text())["usable"] is False


def test_validate_wrong_layout_exits_2_with_one_line(tmp_path, imgs, capsys):
    base = imgs.build_tree(tmp_path / "d")
    imgs.write(base / "Lymphomas" / "lymph_fl" / "a.jpg")
    assert main(["data", "validate", str(base), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cancernet data: error: Unknown folders") and "Did you mean 'Lymphoma'?" in err
    assert err.count("\n") == 1


def test_synth_validate_split_chain(tmp_path, capsys):
    data, split = tmp_path / "demo", tmp_path / "runs" / "split.json"
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(data),
                "--per-class",
                "4",
                "--size",
                "32",
                "--seed",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["data", "validate", str(data), "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "104 usable" in out and "0 unusable" in out
    rc = main(
        [
            "data",
            "split",
            str(data),
            "--out",
            str(split),
            "--protocol",
            "random",
            "--seed",
            "3",
            "--no-progress",
            "--no-cache",
        ]
    )
    assert rc == 0 and split.is_file()
    manifest = json.loads(split.read_text())
    assert manifest["protocol"] == "random" and manifest["seed"] == 3 and len(manifest["files"]) == 104
    ds = load_image_folder(data, split_file=split)
    assert set(ds) <= set(SPLITS) and sum(len(d) for d in ds.values()) == 104
    for name, d in ds.items():
        assert all(manifest["files"][p]["split"] == name for p in d["path"])


@pytest.mark.slow
def test_console_exit_codes_in_a_real_process(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from cancernet_hf.cli import main; sys.exit(main())",
        "data",
        "validate",
    ]
    ok = subprocess.run([*cmd, str(base), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "Per class (usable images):" in ok.stdout
    missing = subprocess.run([*cmd, str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
