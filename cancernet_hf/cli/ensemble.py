"""`cancernet ensemble`: fit trained members into one model folder (weights, remote code, pipeline).

cancernet ensemble --members runs/demo/members/vit-tiny runs/demo/members/convnext-tiny \\
    runs/demo/members/swin-tiny --data-dir data/demo --split-file runs/demo/split.json \\
    --output-dir runs/demo/ensemble
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ensemble",
        help="fit temperatures, weights and an uncertainty threshold; save one transformers model",
        description="Load the trained member folders, predict the validation split of the manifest, fit a "
        "temperature per member and the ensemble weights (NLL), fit the uncertainty threshold, and save "
        "a folder that `pipeline(model=DIR, trust_remote_code=True)` loads.",
    )
    p.add_argument(
        "--members", type=Path, nargs="+", required=True, metavar="DIR", help="trained member folders"
    )
    p.add_argument("--data-dir", type=Path, required=True, help="dataset folder the members were trained on")
    p.add_argument(
        "--split-file", type=Path, required=True, help="split manifest (split.json); uses validation"
    )
    p.add_argument("--output-dir", type=Path, required=True, help="folder to write the ensemble into")
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON (default: the built-in Multi Cancer one)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--uncertainty-quantile",
        type=float,
        default=0.05,
        help="flag images whose top probability is below this quantile of validation's (default 0.05)",
    )
    p.add_argument(
        "--device", help="device for the validation predictions (default: cuda if available, else cpu)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    import json

    from ..constants import ENSEMBLE_META_FILE
    from ..ensemble_build import build_ensemble
    from ..taxonomy import load_taxonomy

    folder = build_ensemble(
        args.members,
        args.data_dir,
        args.split_file,
        args.output_dir,
        taxonomy=load_taxonomy(args.taxonomy),
        batch_size=args.batch_size,
        uncertainty_quantile=args.uncertainty_quantile,
        device=args.device,
        progress=not args.no_progress,
    )
    meta = json.loads((folder / ENSEMBLE_META_FILE).read_text(encoding="utf-8"))
    print(format_fit_report(meta))
    print(f"Ensemble saved to {folder}")
    return 0


def format_fit_report(meta: dict) -> str:
    """The fit results as a small table (validation split)."""
    lines = [f"{'member':<20} {'weight':>7} {'T':>6} {'NLL before':>11} {'NLL after':>10} {'accuracy':>9}"]
    for m in meta["members"]:
        v = m["validation"]
        lines.append(
            f"{m['name']:<20} {m['weight']:>7.3f} {m['temperature']:>6.2f} {v['nll_before']:>11.4f} "
            f"{v['nll_after']:>10.4f} {v['accuracy']:>9.3f}"
        )
    e = meta["ensemble"]["validation"]
    lines.append(f"{'ensemble':<20} {'':>7} {'':>6} {'':>11} {e['nll']:>10.4f} {e['accuracy']:>9.3f}")
    u = meta["uncertainty"]
    lines.append(f"uncertain when top probability < {u['threshold']:.4f} ({u['quantile']:.0%} of validation)")
    if meta.get("notice"):
        lines.append(meta["notice"])
    return "\n".join(lines)
