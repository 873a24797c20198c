"""`cancernet demo`: the main job of `make demo` on the generated demo dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import DEMO_DATA_DIR, DEMO_MEMBERS, DEMO_RUN_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole chain on the synthetic demo dataset")
    p.add_argument("--data-dir", type=Path, default=DEMO_DATA_DIR, help="where the demo dataset is generated")
    p.add_argument("--run-dir", type=Path, default=DEMO_RUN_DIR, help="where every output of the run goes")
    p.add_argument("--members", nargs="+", default=list(DEMO_MEMBERS), help="member presets to train")
    p.add_argument("--per-class", type=int, default=50, help="images per sub-class in the demo dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regenerate", action="store_true", help="generate the demo dataset again")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo

    cfg = DemoConfig(
        data_dir=args.data_dir,
        run_dir=args.run_dir,
        members=tuple(args.members),
        per_class=args.per_class,
        seed=args.seed,
        regenerate=args.regenerate,
    )
    return run_demo(cfg)
