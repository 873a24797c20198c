"""`cancernet train [--loop trainer|accelerate] ARGS...`: train one member.

ARGS are exactly those of scripts/train.py (HfArgumentParser: --model_name_or_path, --data_dir,
--split_file, --output_dir and every TrainingArguments flag, dash or underscore), or one JSON/YAML file.

cancernet train --model_name_or_path vit-tiny --data_dir data/demo --split_file runs/demo/split.json \\
    --output_dir runs/vit-tiny --gradient_accumulation_steps 2
cancernet train --loop accelerate --model_name_or_path swin-tiny ...
"""

from __future__ import annotations

import argparse

LOOPS = ("trainer", "accelerate")


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
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--loop", choices=LOOPS, default="trainer")
    known, rest = pre.parse_known_args(argv)
    return known.loop, rest


def _train(args: argparse.Namespace) -> int:
    from ..training.args import build_parser, parse_args
    from ..training.common import format_scores

    loop, rest = split_loop(list(args.hf_args))
    if not rest or any(a in ("-h", "--help") for a in rest):
        print("usage: cancernet train [--loop trainer|accelerate] ARGS...  (or one args.json/.yaml)\n")
        build_parser().print_help()
        return 0
    model_args, data_args, training_args = parse_args(rest)
    if loop == "accelerate":
        from ..training.accelerate_loop import train_with_accelerate as train
    else:
        from ..training.trainer import train_with_trainer as train
    metrics = train(model_args, data_args, training_args)
    if training_args.process_index == 0:
        print(format_scores(metrics, "validation"))
        print(format_scores(metrics, "test"))
    return 0
