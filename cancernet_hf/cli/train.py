"""`cancernet train [--loop trainer|accelerate] ARGS...`: train one member.

ARGS are exactly those of scripts/train.py (HfArgumentParser: --model_name_or_path, --data_dir,
--split_file, --output_dir and every TrainingArguments flag, dash or underscore), or one JSON/YAML file.

cancernet train --model_name_or_path vit-tiny --data_dir data/demo --split_file runs/demo/split.json \\
    --output_dir runs/vit-tiny --gradient_accumulation_steps 2
cancernet train --loop accelerate --model_name_or_path swin-tiny ...
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    # prefix_chars="+": every --flag is handed untouched to HfArgumentParser in the handler.
    p = subparsers.add_parser(
        "train",
        help="train one member (Trainer, or --loop accelerate); `cancernet train --help` lists every flag",
        add_help=False,
        prefix_chars="+",
    )
    p.add_argument("hf_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=_train)


def split_loop(argv: list[str]) -> tuple[str, list[str]]:
    """Take `--loop X` (or `--loop=X`) out of the arguments; the rest go to HfArgumentParser."""
    from ..training.recipe import LOOPS

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--loop", choices=LOOPS, default="trainer")
    known, rest = pre.parse_known_args(argv)
    return known.loop, rest


def _train(args: argparse.Namespace) -> int:
    from ..training.args import build_parser
    from ..training.recipe import train_from_argv

    loop, rest = split_loop(list(args.hf_args))
    if not rest or any(a in ("-h", "--help") for a in rest):
        print("usage: cancernet train [--loop trainer|accelerate] ARGS...  (or one args.json/.yaml)\n")
        build_parser().print_help()
        return 0
    train_from_argv(rest, loop=loop)
    return 0
