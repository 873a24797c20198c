"""`python -m bench --smoke`: every benchmark runs end to end on tiny sizes and writes its results file.

The figures of a smoke run mean little (tiny presets, a handful of images); these tests prove the scripts
still run against the library and that each results file has what docs/BENCHMARKS.md is rendered from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` is a top-level folder, not installed

from bench import report  # noqa: E402
from bench.__main__ import BENCHES  # noqa: E402

SECTION_KEYS = {"machine", "title", "tables", "notes", "smoke"}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Results and the synthetic JPEG fixtures go to a temporary folder, not bench/results or ~/.cache."""
    monkeypatch.setenv("CANCERNET_BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CANCERNET_CACHE", str(tmp_path / "cache"))


def _check(name: str, extra: set[str]) -> dict:
    from bench.common import results_dir

    data = json.loads((results_dir() / f"{name}_smoke.json").read_text())
    assert SECTION_KEYS | extra <= set(data), set(data)
    assert data["smoke"] is True and data["machine"]["cores"] >= 1
    for table in data["tables"]:
        assert table["rows"] and all(len(row) == len(table["header"]) for row in table["rows"])
    assert all(isinstance(n, str) and n for n in data["notes"])
    return data


def test_bench_list_matches_the_modules():
    for name in BENCHES:
        module = __import__(f"bench.{name}", fromlist=["run"])
        assert callable(module.run)


def test_peak_smoke():
    from bench import peak

    result = peak.run(smoke=True)
    assert result["fp32_gflops"] > 0 and result["bf16_gflops"] > 0
    _check("peak", {"fp32_gflops", "bf16_gflops"})


@pytest.mark.slow
def test_inference_smoke():
    from bench import inference

    inference.run(smoke=True)
    data = _check("inference", {"gflops_per_image", "by_batch", "efficiency", "speedup_batch8", "targets"})
    assert data["gflops_per_image"] > 0
    assert {"naive", "ensemble fp32", "ensemble bf16"} <= set(data["by_batch"]["2"]["img_per_s"])
    agreement = data["by_batch"]["random_members_bf16_vs_fp32"]
    assert agreement["max_prob_diff"] <= 0.02


def test_hashing_smoke():
    from bench import hashing

    hashing.run(smoke=True)
    data = _check("hashing", {"img_per_s", "grouping"})
    assert all(v > 0 for v in data["img_per_s"].values())


def test_data_path_smoke():
    from bench import data_path

    data_path.run(smoke=True)
    data = _check("data_path", {"per_core", "loaders_and_step", "train_step_samples_per_s", "targets"})
    assert "naive: full decode + torchvision" in data["per_core"]["img_per_s"]


@pytest.mark.slow
def test_training_smoke():
    from bench import training

    training.run(smoke=True)
    data = _check("training", {"results", "targets", "preset"})
    for key in ("trainer 4x2", "accelerate 4x2"):
        r = data["results"][key]
        assert r["samples_per_s"] > 0 and r["no_accum_samples_per_s"] > 0 and r["peak_rss_mib"] > 0


def test_report_renders_the_results(tmp_path):
    from bench.common import save_results

    save_results(
        "peak",
        {
            "title": "Peak",
            "tables": [{"title": "t", "header": ["a", "b"], "rows": [["x", 1.5]]}],
            "notes": ["n"],
        },
    )
    out = report.write_benchmarks_md(tmp_path / "BENCHMARKS.md")
    text = out.read_text()
    assert "## Peak" in text and "| x | 1.5 |" in text and "\nn\n" in text
