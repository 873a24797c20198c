"""Train one CancerNet member with `Trainer` (the standard Hugging Face path).

One process (CPU or one GPU):
    python scripts/train.py --model_name_or_path vit-tiny --data_dir data/demo \
        --split_file runs/demo/split.json --output_dir runs/vit-tiny \
        --per_device_train_batch_size 16 --gradient_accumulation_steps 2 --num_train_epochs 5
Several GPUs (bf16, see accelerate_config.yaml):
    accelerate launch --config_file accelerate_config.yaml scripts/train.py ...same flags...
Two CPU processes (gloo DDP; `--cpu --num_processes 2` would start ONE process):
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 scripts/train.py ...
    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 scripts/train.py ...   (same; without the variable
    each CPU process trains alone, which the script refuses)
A JSON or YAML file holding the same keys can replace the flags: python scripts/train.py args.json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from cancernet_hf.errors import CancerNetError
    from cancernet_hf.training.recipe import train_from_argv

    try:
        train_from_argv(argv, loop="trainer")
    except CancerNetError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
