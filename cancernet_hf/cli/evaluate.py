"""`cancernet evaluate` (metrics report of a member or the ensemble) and `cancernet predict`.

cancernet evaluate --model runs/demo/ensemble --data-dir data/demo --split-file runs/demo/split.json \
    --split test --output-dir runs/demo/reports/ensemble
cancernet predict --model runs/demo/ensemble scan1.jpg slides/ --tta --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..constants import SPLITS

EXIT_SOME_IMAGES_FAILED = 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a member or ensemble folder on one split: metrics.json + plots",
        description="Run the model on one split of the manifest and write metrics.json (accuracy, macro-F1, "
        "balanced accuracy at both levels, per-class P/R/F1, ECE before/after a temperature fitted on the "
        "validation split, NLL, AURC), predictions.csv and PNG plots into --output-dir.",
    )
    p.add_argument("--model", type=Path, required=True, help="member or ensemble folder (save_pretrained)")
    p.add_argument("--data-dir", type=Path, required=True, help="dataset folder the manifest refers to")
    p.add_argument("--split-file", type=Path, required=True, help="split manifest (split.json)")
    p.add_argument("--split", default="test", help=f"split to report (default test; usually one of {SPLITS})")
    p.add_argument("--output-dir", type=Path, required=True, help="report folder to write")
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON (default: the built-in Multi Cancer one)")
    p.add_argument(
        "--batch-size", type=_positive_int, default=64, help="images per forward pass (default 64)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser(
        "predict",
        help="predict image files or folders with a member or the ensemble",
        description="Print the top sub-classes and main classes of each image (folders are searched "
        "recursively). Exit 0 when every image was predicted, 1 when some could not be read.",
    )
    p.add_argument("--model", type=Path, required=True, help="member or ensemble folder")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--tta", action="store_true", help="dihedral test-time augmentation (ensemble only)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image (JSON lines)")
    p.add_argument("--top-k", type=_positive_int, default=3, help="classes shown per level (default 3)")
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON for a member (default: Multi Cancer)")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.set_defaults(func=_predict)


def _evaluate(args: argparse.Namespace) -> int:
    from ..constants import METRICS_FILE
    from ..evaluation.report import evaluate_model, format_table
    from ..taxonomy import load_taxonomy

    metrics = evaluate_model(
        args.model,
        args.data_dir,
        args.split_file,
        split=args.split,
        output_dir=args.output_dir,
        taxonomy=load_taxonomy(args.taxonomy),
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(format_table(metrics))
    print(f"Wrote {args.output_dir / METRICS_FILE} and {len(metrics['plots'])} plots.")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..evaluation.predict import format_prediction, predict_images
    from ..taxonomy import load_taxonomy

    results = predict_images(
        args.model,
        args.inputs,
        taxonomy=load_taxonomy(args.taxonomy),
        tta=args.tta,
        top_k=args.top_k,
        batch_size=args.batch_size,
        progress=not args.json,
    )
    for result in results:
        print(json.dumps(result) if args.json else format_prediction(result))
    return EXIT_SOME_IMAGES_FAILED if any("error" in r for r in results) else 0
