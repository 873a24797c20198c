"""Train one CancerNet member with the plain Accelerate loop (same flags and outputs as scripts/train.py).

One process:
    python scripts/train_accelerate.py --model_name_or_path convnext-tiny --data_dir data/demo \
        --split_file runs/demo/split.json --output_dir runs/convnext-tiny --gradient_accumulation_steps 2
Several GPUs (bf16):
    accelerate launch --config_file accelerate_config.yaml scripts/train_accelerate.py ...same flags...
Two CPU processes (gloo DDP):
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 scripts/train_accelerate.py ...
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 scripts/train_accelerate.py ...
Resume after an interruption: add --resume_from_checkpoint latest (or a checkpoint-N folder).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from cancernet_hf.errors import CancerNetError
    from cancernet_hf.training.accelerate_loop import train_with_accelerate
    from cancernet_hf.training.args import parse_args
    from cancernet_hf.training.common import format_scores

    try:
        # 1. Arguments (the same dataclasses as the Trainer path).
        model_args, data_args, training_args = parse_args(argv)
        # 2. Logging: INFO on the main process only.
        logging.basicConfig(
            format="%(levelname)s %(name)s: %(message)s", level=training_args.get_process_log_level()
        )
        # 3. Train, evaluate (gathered over processes), write the member folder.
        metrics = train_with_accelerate(model_args, data_args, training_args)
    except CancerNetError as e:
        print(f"train_accelerate: error: {e}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(format_scores(metrics, "validation"))
        print(format_scores(metrics, "test"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
