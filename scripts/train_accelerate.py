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

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from cancernet_hf.errors import CancerNetError
    from cancernet_hf.training.recipe import train_from_argv

    try:
        train_from_argv(argv, loop="accelerate")
    except CancerNetError as e:
        print(f"train_accelerate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
