"""`make demo`: the whole chain on the generated demo dataset, stage by stage.

Every stage is one library call; this module only orders them, fixes the demo's places
(constants.DEMO_*) and prints what happened. Figures it prints come from SYNTHETIC data.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .constants import (
    DEMO_DATA_NOTICE,
    DEMO_MEMBERS,
    ENSEMBLE_META_FILE,
    ENSEMBLE_SUBDIR,
    HUB_SUBDIR,
    MEMBERS_SUBDIR,
    REPORTS_SUBDIR,
    SCAN_REPORT_FILE,
    SPLIT_FILE,
    SYNTH_MANIFEST_FILE,
)
from .taxonomy import MULTI_CANCER

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    data_dir: Path
    run_dir: Path
    members: tuple[str, ...] = DEMO_MEMBERS
    per_class: int = 50
    image_size: int = 128
    seed: int = 0
    regenerate: bool = False
    hub_user: str = (
        "your-name"  # placeholder org in the staged repo ids; the real one goes on `cancernet push`
    )
    stages: tuple[str, ...] = field(default=("data", "train", "ensemble", "evaluate", "stage"))


def _banner(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)), flush=True)


def prepare_data(cfg: DemoConfig) -> Path:
    """Generate (once), validate and split the demo dataset; returns the split manifest path."""
    from .data.folder import scan_folder
    from .data.splits import make_split
    from .data.synthetic import generate_demo_dataset

    _banner("1. demo dataset")
    if cfg.regenerate or not (cfg.data_dir / SYNTH_MANIFEST_FILE).exists():
        result = generate_demo_dataset(
            cfg.data_dir, per_class=cfg.per_class, size=cfg.image_size, seed=cfg.seed
        )
        print(result.summary())
    else:
        print(f"reusing {cfg.data_dir} (delete it or pass --regenerate to make it again)")

    _banner("2. validation")
    scan = scan_folder(cfg.data_dir, MULTI_CANCER)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    scan.save(cfg.run_dir / SCAN_REPORT_FILE)
    print(scan.summary())

    _banner("3. leakage-aware split")
    manifest = make_split(scan, protocol="group", seed=cfg.seed)
    split_path = cfg.run_dir / SPLIT_FILE
    manifest.save(split_path)
    print(manifest.summary())
    print(f"split manifest: {split_path}")
    return split_path


def train_members(cfg: DemoConfig, split_path: Path) -> list[Path]:
    """Train every member preset with the demo recipe (micro-batch 16 x accumulation 2)."""
    from .training.common import format_scores
    from .training.recipe import train_member

    _banner("4. members (Trainer, gradient accumulation 2)")
    member_dirs = []
    for name in cfg.members:
        out = cfg.run_dir / MEMBERS_SUBDIR / name
        print(f"-- training {name} -> {out}", flush=True)
        metrics = train_member(name, cfg.data_dir, split_path, out, seed=cfg.seed, torch_threads=1)
        print(f"{name}: {format_scores(metrics, 'validation')}", flush=True)
        member_dirs.append(out)
    return member_dirs


def build_demo_ensemble(cfg: DemoConfig, member_dirs: list[Path], split_path: Path) -> Path:
    from .ensemble_build import build_ensemble

    _banner("5. ensemble (temperatures + weights fitted on validation)")
    out = build_ensemble(member_dirs, cfg.data_dir, split_path, cfg.run_dir / ENSEMBLE_SUBDIR)
    meta = json.loads((out / ENSEMBLE_META_FILE).read_text())
    for member in meta.get("members", []):
        print(
            f"{member.get('name')}: weight {member.get('weight', float('nan')):.3f} "
            f"temperature {member.get('temperature', float('nan')):.3f}"
        )
    print(f"ensemble folder: {out}")
    return out


def evaluate_all(cfg: DemoConfig, model_dirs: dict[str, Path], split_path: Path) -> dict[str, dict]:
    """Evaluate members and the ensemble on the test split; print the comparison and the checks."""
    from .evaluation.report import evaluate_model, format_comparison

    _banner("6. evaluation on the test split")
    results = {
        name: evaluate_model(
            path, cfg.data_dir, split_path, split="test", output_dir=cfg.run_dir / REPORTS_SUBDIR / name
        )
        for name, path in model_dirs.items()
    }
    print(format_comparison(results))
    print(f"split protocol: {next(iter(results.values())).get('split_protocol')}")
    print(f"reports: {cfg.run_dir / REPORTS_SUBDIR}/<name>/ (metrics.json + plots)")
    members = [m for name, m in results.items() if name != ENSEMBLE_SUBDIR]
    if members and ENSEMBLE_SUBDIR in results:
        ens = results[ENSEMBLE_SUBDIR]
        best_f1 = max(m["sub"]["macro_f1"] for m in members)
        mean_nll = sum(m["calibration"]["nll"] for m in members) / len(members)
        f1_ok = ens["sub"]["macro_f1"] >= best_f1
        nll_ok = ens["calibration"]["nll"] < mean_nll
        print(
            f"check: ensemble macro-F1 {ens['sub']['macro_f1']:.3f} vs best member {best_f1:.3f} "
            f"-> {'ok' if f1_ok else 'WORSE'}; ensemble NLL {ens['calibration']['nll']:.3f} vs member "
            f"mean {mean_nll:.3f} -> {'ok' if nll_ok else 'NOT LOWER'}"
        )
    return results


def stage_hub_repos(cfg: DemoConfig, ensemble_dir: Path, member_dir: Path) -> None:
    """Stage (never upload) the ensemble repo, one member repo and the Space, and print how to upload."""
    from .hub.publish import push_model

    _banner("7. Hub repos, staged for reading (--dry-run: nothing is uploaded)")
    hub = cfg.run_dir / HUB_SUBDIR
    member_repo = f"{cfg.hub_user}/cancernet-{member_dir.name}"
    member = push_model(
        member_dir,
        member_repo,
        kind="member",
        dry_run=True,
        overwrite=True,
        stage_dir=hub / f"cancernet-{member_dir.name}",
    )
    ensemble = push_model(
        ensemble_dir,
        f"{cfg.hub_user}/cancernet-ensemble",
        dry_run=True,
        overwrite=True,
        stage_dir=hub / "cancernet-ensemble",
        member_repo_ids=[member_repo],
        space_id=f"{cfg.hub_user}/cancernet",
        space_stage_dir=hub / "space",
    )
    print(member.summary())
    print(ensemble.summary())


def run_demo(cfg: DemoConfig) -> int:
    start = time.perf_counter()
    print(DEMO_DATA_NOTICE)
    split_path = prepare_data(cfg)
    if "train" in cfg.stages:
        member_dirs = train_members(cfg, split_path)
    else:
        member_dirs = [cfg.run_dir / MEMBERS_SUBDIR / name for name in cfg.members]
    if "ensemble" in cfg.stages:
        ensemble_dir = build_demo_ensemble(cfg, member_dirs, split_path)
    else:
        ensemble_dir = cfg.run_dir / ENSEMBLE_SUBDIR
    if "evaluate" in cfg.stages:
        evaluate_all(cfg, {**{d.name: d for d in member_dirs}, ENSEMBLE_SUBDIR: ensemble_dir}, split_path)
    if "stage" in cfg.stages:
        stage_hub_repos(cfg, ensemble_dir, member_dirs[0])
    _banner("done")
    print(f"whole demo: {time.perf_counter() - start:.0f} s. {DEMO_DATA_NOTICE}")
    print(f"Serve the ensemble in a browser:  cancernet app --model {ensemble_dir}   (or: make app)")
    return 0
