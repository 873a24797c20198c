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

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    import transformers

    from cancernet_hf.errors import CancerNetError
    from cancernet_hf.training.args import parse_args
    from cancernet_hf.training.common import format_scores
    from cancernet_hf.training.trainer import train_with_trainer

    try:
        # 1. Arguments: ModelArguments, DataArguments, TrainingArguments (+ extras).
        model_args, data_args, training_args = parse_args(argv)
        # 2. Logging: INFO on the main process, warnings elsewhere (as transformers' examples).
        logging.basicConfig(
            format="%(levelname)s %(name)s: %(message)s", level=training_args.get_process_log_level()
        )
        transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
        # 3. Train, evaluate on validation and test, write the member folder.
        metrics = train_with_trainer(model_args, data_args, training_args)
    except CancerNetError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(format_scores(metrics, "validation"))
        print(format_scores(metrics, "test"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
