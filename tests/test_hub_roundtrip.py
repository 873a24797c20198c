"""End to end against a local Hub: `cancernet push` uploads, a fresh process loads the model by repo id.

The Hub is `tests/hub_server.py` on 127.0.0.1 (the real Hub is unreachable here). Only the child
processes go online (HF_HUB_OFFLINE=0, HF_ENDPOINT=the local server); this process stays offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hub_fixtures import make_data_dir, make_ensemble, make_member, make_report
from hub_server import HubServer
from huggingface_hub import ModelCard

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer(tmp_path_factory.mktemp("local-hub")) as server:
        yield server
        # every call the clients made is one the local Hub speaks (no silently tolerated 404s)
        assert server.unrouted == []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    data = make_data_dir(root / "data", per_class=3)
    member = make_member(root / "run" / "members" / "vit-tiny", data)
    report = make_report(root / "run" / "reports" / "vit-tiny", model=str(member))
    return {
        "root": root,
        "data": data,
        "member": member,
        "report": report,
        "image": next(data.rglob("*.jpg")),
    }


def child_env(hub: HubServer, home: Path, *, token: str | None = "dummy") -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def run_push(
    hub: HubServer, home: Path, *args: str, token: str | None = "dummy"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cancernet_hf.cli import main; sys.exit(main())",
            "push",
            *args,
        ],
        env=child_env(hub, home, token=token),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def load_by_repo_id(
    hub: HubServer, home: Path, repo_id: str, image: Path, *, remote_code: bool, revision=None
):
    """In a fresh interpreter: pipeline(model=repo_id) from the local Hub, predict one image."""
    script = textwrap.dedent(
        f"""
        import json
        from transformers import pipeline
        kwargs = {{"trust_remote_code": True}} if {remote_code!r} else {{}}
        pipe = pipeline(model={repo_id!r}, revision={revision!r}, **kwargs)
        out = pipe({str(image)!r}, top_k=26) if pipe.task == "image-classification" else pipe({str(image)!r})
        print("RESULT " + json.dumps({{"task": pipe.task, "out": out}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=child_env(hub, home, token=None),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_member_round_trip_with_the_stock_pipeline(hub, runs, tmp_path):
    stage = tmp_path / "stage"
    done = run_push(
        hub,
        tmp_path / "push-home",
        "--model",
        str(runs["member"]),
        "--repo-id",
        "cancernet-test/cn-vit",
        "--report",
        str(runs["report"]),
        "--stage-dir",
        str(stage),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "uploaded: " in done.stdout

    repo = hub.repo("cancernet-test/cn-vit")
    assert repo is not None and not repo.private
    staged = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    assert repo.files(repo.main) == sorted([".gitattributes", *staged])  # the repo mirrors the stage
    for name in staged:
        assert (repo.snapshot(repo.main) / name).read_bytes() == (stage / name).read_bytes(), name
    # the usage snippet is pinned to the commit that uploaded the weights
    upload_commit = repo.commits[1]
    assert f'revision="{upload_commit}"' in (stage / "README.md").read_text()
    assert ModelCard.load(stage / "README.md").data.eval_results[0].metric_value == 0.1154
    assert set(hub.tokens) - {None} == {"dummy"}  # the token travelled; nothing else was tried
    assert not any(path.endswith(("/lfs", "/xet-write-token")) for _, path, _ in hub.requests)

    # a fresh process: no task given, so the task comes from the card's pipeline_tag via the model info API
    result = load_by_repo_id(
        hub, tmp_path / "load-home", "cancernet-test/cn-vit", runs["image"], remote_code=False
    )
    assert result["task"] == "image-classification"
    labels = [p["label"] for p in result["out"]]
    assert sorted(labels) == sorted(json.loads((stage / "config.json").read_text())["label2id"])
    assert sum(p["score"] for p in result["out"]) == pytest.approx(1.0, abs=1e-4)
    # the pinned revision loads the same weights
    pinned = load_by_repo_id(
        hub,
        tmp_path / "pinned-home",
        "cancernet-test/cn-vit",
        runs["image"],
        remote_code=False,
        revision=upload_commit,
    )
    assert pinned["out"] == result["out"]


def test_push_without_a_token_fails_clearly(hub, runs, tmp_path):
    done = run_push(
        hub,
        tmp_path / "empty-home",
        "--model",
        str(runs["member"]),
        "--repo-id",
        "cancernet-test/no-token",
        "--stage-dir",
        str(tmp_path / "stage"),
        token=None,
    )
    assert done.returncode == 2
    assert "No Hugging Face token" in done.stderr
    assert hub.repo("cancernet-test/no-token") is None
    assert not (tmp_path / "stage").exists()  # refused before staging


def test_ensemble_and_space_round_trip_with_remote_code(hub, runs, tmp_path):
    second = make_member(runs["root"] / "run" / "members" / "vit-tiny-b", runs["data"], seed=1)
    ensemble = make_ensemble(runs["root"] / "run" / "ensemble", [runs["member"], second], runs["data"])
    if ensemble is None:
        pytest.skip("cancernet_hf.ensemble_build is not there yet (the member round trip covers the upload)")
    report = make_report(runs["root"] / "run" / "reports" / "ensemble", model=str(ensemble), kind="ensemble")
    space_src = ROOT / "spaces" / "cancernet"
    space_args = ["--space", "cancernet-test/cancernet-space"] if (space_src / "README.md").is_file() else []
    stage = tmp_path / "hub" / "cn-ensemble"
    done = run_push(
        hub,
        tmp_path / "push-home",
        "--model",
        str(ensemble),
        "--repo-id",
        "cancernet-test/cn-ensemble",
        "--report",
        str(report),
        "--stage-dir",
        str(stage),
        "--private",
        *space_args,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    repo = hub.repo("cancernet-test/cn-ensemble")
    assert repo.private
    assert {"modeling_cancernet.py", "configuration_cancernet.py", "cancernet.json"} <= set(
        repo.files(repo.main)
    )

    if space_args:
        space = hub.repo("cancernet-test/cancernet-space", "space")
        assert space is not None and space.sdk == "gradio"
        readme = (space.snapshot(space.main) / "README.md").read_text()
        assert "- cancernet-test/cn-ensemble" in readme
        variables = {v["key"]: v["value"] for v in space.variables}
        assert variables["CANCERNET_MODEL"] == "cancernet-test/cn-ensemble"
        assert variables["CANCERNET_MODEL_REVISION"] == repo.commits[1]  # pinned to the uploaded weights

    # fresh process, by repo id, remote code; the private repo needs the token
    home = tmp_path / "load-home"
    script = textwrap.dedent(
        f"""
        import json
        from transformers import pipeline
        remote = pipeline(model="cancernet-test/cn-ensemble", trust_remote_code=True)
        local = pipeline(model={str(stage)!r}, trust_remote_code=True)
        a, b = remote({str(runs["image"])!r}), local({str(runs["image"])!r})
        print("RESULT " + json.dumps({{"task": remote.task, "remote": a, "local": b}}))
        """
    )
    env = child_env(hub, home, token="dummy")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=home
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert result["task"] == "cancer-image-classification"
    remote, local = result["remote"], result["local"]
    remote, local = (
        (remote[0] if isinstance(remote, list) else remote),
        (local[0] if isinstance(local, list) else local),
    )
    assert [c["label"] for c in remote["sub_class"]] == [c["label"] for c in local["sub_class"]]
    for r, s in zip(remote["sub_class"], local["sub_class"]):
        assert r["score"] == pytest.approx(s["score"], abs=1e-6)
    assert {m["member"] for m in remote["members"]} == {"vit-tiny", "vit-tiny-b"}

    # without the token the private repo is not found
    failed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from transformers import pipeline; pipeline(model='cancernet-test/cn-ensemble', "
            "trust_remote_code=True)",
        ],
        env=child_env(hub, tmp_path / "anon-home", token=None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode != 0


def test_unreachable_hub_fails_in_one_line(runs, tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "README.md").write_text("---\nlicense: mit\n---\n# x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="dummy", HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cancernet_hf.cli import main; sys.exit(main())",
            "push",
            "--staged",
            str(stage),
            "--repo-id",
            "org/x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Cannot reach the Hub at http://127.0.0.1:9" in done.stderr
