"""`cancernet data validate|synth|split`: check a dataset folder, make the demo one, split one.

cancernet data validate "Multi Cancer" --report scan.json   # exit 0 when usable, 1 when not
cancernet data synth --out data/demo --per-class 50
cancernet data split "Multi Cancer" --out runs/split.json --protocol group
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import SPLIT_PROTOCOLS

EXIT_NOT_USABLE = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="validate, generate or split an image dataset folder")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    p = commands.add_parser(
        "validate",
        help="scan a dataset folder and report counts and unusable files",
        description="Scan DIR (<Main>/<sub>/*.jpg, the doubly nested Kaggle download, or flat <sub>/*.jpg), "
        "check every image and print per-class counts. Exit 0 when usable (unusable files are "
        "then skipped), 1 when not, 2 when the layout is wrong.",
    )
    p.add_argument("dir", type=Path, help="dataset folder")
    _add_common(p)
    p.add_argument("--report", type=Path, help="write the findings as JSON to this file")
    p.add_argument("--no-check", action="store_true", help="only list files, do not decode images")
    p.set_defaults(func=_validate)

    p = commands.add_parser("synth", help="generate the synthetic demo dataset (real layout, fake images)")
    p.add_argument("--out", type=Path, required=True, help="folder to write <Main>/<sub>/*.jpg into")
    p.add_argument("--per-class", type=int, default=50, help="images per sub-class (default 50)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON (default: the built-in Multi Cancer one)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_synth)

    p = commands.add_parser("split", help="write a leakage-aware train/validation/test manifest (split.json)")
    p.add_argument("dir", type=Path, help="dataset folder")
    p.add_argument("--out", type=Path, required=True, help="manifest file to write (e.g. runs/x/split.json)")
    p.add_argument("--protocol", choices=SPLIT_PROTOCOLS, default="group", help="group (default) or random")
    p.add_argument(
        "--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST")
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threshold", type=int, help="Hamming distance linking near-duplicates (default: library)"
    )
    p.add_argument("--no-cache", action="store_true", help="recompute perceptual hashes")
    _add_common(p)
    p.set_defaults(func=_split)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--taxonomy", type=Path, help="taxonomy JSON (default: the built-in Multi Cancer one)")
    p.add_argument("--workers", type=int, help="parallel processes (default: all CPU cores)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _validate(args: argparse.Namespace) -> int:
    from ..data.folder import scan_folder
    from ..taxonomy import load_taxonomy

    scan = scan_folder(
        args.dir,
        load_taxonomy(args.taxonomy),
        check_images=not args.no_check,
        num_workers=args.workers,
        progress=not args.no_progress,
    )
    print(scan.summary())
    if args.report:
        print(f"Report written to {scan.save(args.report)}")
    if scan.bad_files and scan.usable:
        print(f"{len(scan.bad_files):,} unusable files will be skipped.")
    return 0 if scan.usable else EXIT_NOT_USABLE


def _synth(args: argparse.Namespace) -> int:
    from ..data.synthetic import generate_demo_dataset
    from ..taxonomy import load_taxonomy

    result = generate_demo_dataset(
        args.out,
        per_class=args.per_class,
        size=args.size,
        seed=args.seed,
        taxonomy=load_taxonomy(args.taxonomy),
        progress=not args.no_progress,
    )
    print(result.summary())
    return 0


def _split(args: argparse.Namespace) -> int:
    from ..data.folder import scan_folder
    from ..data.splits import make_split
    from ..taxonomy import load_taxonomy

    progress = not args.no_progress
    scan = scan_folder(args.dir, load_taxonomy(args.taxonomy), num_workers=args.workers, progress=progress)
    if scan.bad_files:
        print(
            f"{len(scan.bad_files):,} unusable files are left out of the split (see `cancernet data validate`)."
        )
    options = {} if args.threshold is None else {"threshold": args.threshold}
    manifest = make_split(
        scan,
        protocol=args.protocol,
        fractions=tuple(args.fractions),
        seed=args.seed,
        num_workers=args.workers,
        use_cache=not args.no_cache,
        progress=progress,
        **options,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest.save(args.out)
    print(manifest.summary())
    print(f"Split manifest written to {args.out}")
    return 0
