"""Command-line arguments of both training entry points, shaped like transformers' example scripts.

`HfArgumentParser` turns three dataclasses into flags: `ModelArguments`, `DataArguments` and
`CancerNetTrainingArguments` (the stock `TrainingArguments` with defaults suited to a classifier
plus the timm-style extras). Every familiar flag works, in dash or underscore spelling
(`--per-device-train-batch-size` == `--per_device_train_batch_size`), and a single `.json`/`.yaml`
argument is read as a config file, as in transformers' examples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, TrainingArguments

from ..errors import SplitError, TrainingSetupError, did_you_mean

logger = logging.getLogger(__name__)

# The metric Trainer and the Accelerate loop select the best checkpoint by (a key of classification_scores).
DEFAULT_BEST_METRIC = "sub_macro_f1"
# Spellings of `--resume_from_checkpoint` that mean "the newest checkpoint in --output_dir".
RESUME_LATEST = frozenset({"true", "latest", "last", "1", "yes"})
AUTO_AUGMENT = ("randaugment", "trivialaugment")
# TrainingArguments names of 4.x examples that 5.x dropped, with what to use instead.
RENAMED_IN_5 = {
    "evaluation_strategy": "renamed --eval_strategy in transformers 5",
    "overwrite_output_dir": "removed in transformers 5: pick a new --output_dir or resume with --resume_from_checkpoint",
    "warmup_ratio": "removed in transformers 5: --warmup_steps takes a fraction < 1 of the total steps",
    "logging_dir": "removed in transformers 5: set TENSORBOARD_LOGGING_DIR or use --output_dir",
}


@dataclass
class ModelArguments:
    """Which member to train."""

    model_name_or_path: str = field(
        default="vit-tiny",
        metadata={
            "help": "A Hub checkpoint id (e.g. google/vit-base-patch16-224-in21k, facebook/convnext-tiny-224, "
            "microsoft/swin-tiny-patch4-window7-224, timm/...), a local folder holding one, or a preset name "
            "(vit-tiny, convnext-tiny, swin-tiny: random init for the offline demo; *-small: real sizes)."
        },
    )
    disable_dropout: bool = field(
        default=False,
        metadata={
            "help": "Switch dropout and drop-path off (deterministic forward pass, for equivalence checks)."
        },
    )

    def __post_init__(self) -> None:
        if not self.model_name_or_path or not self.model_name_or_path.strip():
            raise TrainingSetupError(
                "--model_name_or_path is empty; pass a Hub id, a local checkpoint folder or a preset "
                "such as 'vit-tiny'."
            )


@dataclass
class DataArguments:
    """Where the images and the split manifest are, and how training images are augmented."""

    data_dir: str = field(
        default=None,
        metadata={
            "help": "Dataset root: <Main>/<sub>/*.jpg (one or two 'Multi Cancer' levels above are fine)."
        },
    )
    split_file: str = field(
        default=None,
        metadata={
            "help": "Split manifest written by `cancernet data split` (split.json); copied into the run."
        },
    )
    taxonomy: str | None = field(
        default=None,
        metadata={
            "help": "Taxonomy JSON for other datasets with the same two-level layout (default: Multi Cancer)."
        },
    )
    augment: bool = field(
        default=True,
        metadata={
            "help": "Random training augmentation from the member's image processor (--no_augment: off)."
        },
    )
    crop_scale_min: float | None = field(
        default=None,
        metadata={"help": "Smallest random-resized-crop area fraction (default: the transforms' 0.35)."},
    )
    dihedral: bool = field(
        default=True,
        metadata={"help": "Random rot90/flips for microscopy classes (never MRI/CT); --no_dihedral: off."},
    )
    color_jitter: float | None = field(
        default=None, metadata={"help": "Brightness/contrast/saturation jitter (default 0.2; 0 = off)."}
    )
    stain_jitter: float | None = field(
        default=None, metadata={"help": "H&E stain jitter for stained classes (default 0.05; 0 = off)."}
    )
    auto_augment: str | None = field(
        default=None, metadata={"help": "Extra policy: randaugment or trivialaugment (default: none)."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Truncate the training split to this many images (quick debugging runs)."},
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Truncate the validation and test splits to this many images."},
    )

    def augment_options(self) -> dict:
        """Keyword arguments for `build_transforms(train=True)`; unset ones keep the transforms' defaults."""
        options: dict = {"dihedral": self.dihedral}
        if self.crop_scale_min is not None:
            options["crop_scale"] = (self.crop_scale_min, 1.0)
        for name in ("color_jitter", "stain_jitter", "auto_augment"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options

    def __post_init__(self) -> None:
        if self.data_dir is None:
            raise TrainingSetupError(
                "--data_dir is missing; pass the dataset root folder (<Main>/<sub>/*.jpg)."
            )
        if not Path(self.data_dir).is_dir():
            raise TrainingSetupError(
                f"--data_dir {self.data_dir!r} is not a folder; pass the dataset root, or create the demo data "
                "with `cancernet data synth --out data/demo`."
            )
        if self.split_file is None:
            raise SplitError(
                "--split_file is missing; a run trains on the manifest's train split and reports its validation "
                "and test splits. Create one with `cancernet data split DATA_DIR --out split.json`."
            )
        if not Path(self.split_file).is_file():
            raise SplitError(
                f"Split manifest {self.split_file!r} does not exist; create it with "
                f"`cancernet data split {self.data_dir} --out {self.split_file}`."
            )
        if self.taxonomy is not None and not Path(self.taxonomy).is_file():
            raise TrainingSetupError(
                f"--taxonomy {self.taxonomy!r} is not a file; pass a taxonomy JSON file."
            )
        if self.crop_scale_min is not None and not 0.0 < self.crop_scale_min <= 1.0:
            raise TrainingSetupError(f"--crop_scale_min must be in (0, 1], got {self.crop_scale_min}.")
        if self.auto_augment is not None and self.auto_augment not in AUTO_AUGMENT:
            raise TrainingSetupError(
                f"--auto_augment {self.auto_augment!r} is unknown; use one of {list(AUTO_AUGMENT)}."
                f"{did_you_mean(self.auto_augment, AUTO_AUGMENT)}"
            )
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TrainingSetupError(f"--{name} must be a positive number of images, got {value}.")


@dataclass
class CancerNetTrainingArguments(TrainingArguments):
    """`TrainingArguments` with classifier defaults and the timm-style extras (mixup/cutmix, EMA, layer decay).

    Changed defaults: evaluate and save every epoch, keep the best checkpoint by sub-class macro-F1,
    keep the `image` column for the on-the-fly transforms (`remove_unused_columns=False`).
    """

    output_dir: str | None = field(
        default="runs/member", metadata={"help": "Where the model, checkpoints and metrics are written."}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no, steps or epoch."})
    save_strategy: str = field(
        default="epoch", metadata={"help": "When to checkpoint: no, steps, epoch or best."}
    )
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Finish with the best checkpoint by --metric_for_best_model."}
    )
    metric_for_best_model: str | None = field(
        default=DEFAULT_BEST_METRIC,
        metadata={
            "help": "Validation score that picks the best checkpoint: sub_macro_f1, sub_accuracy, main_macro_f1, "
            "main_accuracy, ... or loss."
        },
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints kept (the best one is kept)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: transforms read the `image` column on the fly."}
    )
    logging_steps: float = field(
        default=10, metadata={"help": "Log the training loss every N optimiser steps."}
    )
    # timm-style extras, all off by default.
    mixup_alpha: float = field(
        default=0.0, metadata={"help": "Mixup Beta(alpha, alpha); 0 = off (e.g. 0.8)."}
    )
    cutmix_alpha: float = field(
        default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 = off (e.g. 1.0)."}
    )
    mixup_prob: float = field(
        default=1.0, metadata={"help": "Probability of mixing a batch when mixup/cutmix is on."}
    )
    ema_decay: float | None = field(
        default=None,
        metadata={
            "help": "Keep an exponential moving average of the weights (e.g. 0.999); it is evaluated and saved."
        },
    )
    layer_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning-rate decay (e.g. 0.75): block i of L gets lr * decay**(L - i)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; on CPU it only warns
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise TrainingSetupError(
                    f"--{name} must be >= 0 (0 switches it off), got {getattr(self, name)}."
                )
        if not 0.0 <= self.mixup_prob <= 1.0:
            raise TrainingSetupError(f"--mixup_prob must be in [0, 1], got {self.mixup_prob}.")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise TrainingSetupError(f"--ema_decay must be in (0, 1) such as 0.999, got {self.ema_decay}.")
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise TrainingSetupError(f"--layer_decay must be in (0, 1] such as 0.75, got {self.layer_decay}.")
        if self.use_mixup and self.label_smoothing_factor > 0:
            logger.info("label smoothing %.3g is applied to the mixed targets", self.label_smoothing_factor)

    @property
    def use_mixup(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


ARGUMENT_CLASSES = (ModelArguments, DataArguments, CancerNetTrainingArguments)


def build_parser() -> HfArgumentParser:
    return HfArgumentParser(ARGUMENT_CLASSES)


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, CancerNetTrainingArguments]:
    """Parse flags, or one `.json`/`.yaml` config file (then flags are not mixed in), like transformers' examples."""
    parser = build_parser()
    argv = list(argv) if argv is not None else None
    if argv is None:
        import sys

        argv = sys.argv[1:]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=str(Path(argv[0]).resolve()))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(yaml_file=str(Path(argv[0]).resolve()))
    *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if remaining:
        raise TrainingSetupError(unknown_flags_message(remaining, parser))
    return tuple(parsed)


def unknown_flags_message(remaining: Sequence[str], parser: HfArgumentParser) -> str:
    """Name each unknown flag with its 5.x replacement or the nearest known flag."""
    known = [o for a in parser._actions for o in a.option_strings]
    hints = []
    for token in remaining:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        key = name[2:].replace("-", "_")
        hint = RENAMED_IN_5.get(key) or did_you_mean(name, known).strip()
        hints.append(f"{name}" + (f" ({hint})" if hint else ""))
    listed = "; ".join(hints) if hints else " ".join(remaining)
    return (
        f"Unknown training arguments: {listed}. Run `cancernet train --help` for the flags of "
        f"transformers {_transformers_version()} and ours."
    )


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def resolve_resume(value: str | bool | None, output_dir: str | Path) -> str | None:
    """`--resume_from_checkpoint` as a checkpoint folder: a path, or true/latest for the newest in output_dir."""
    if (
        value is None
        or value is False
        or (isinstance(value, str) and value.lower() in {"", "false", "no", "0"})
    ):
        return None
    if value is True or (isinstance(value, str) and value.lower() in RESUME_LATEST):
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise TrainingSetupError(
                f"--resume_from_checkpoint {value!r} asks for the newest checkpoint, but {str(out)!r} holds no "
                "checkpoint-* folder; pass a checkpoint path or start without --resume_from_checkpoint."
            )
        return last
    path = Path(value)
    if not path.is_dir():
        raise TrainingSetupError(
            f"--resume_from_checkpoint {str(value)!r} is not a folder; pass a checkpoint-* folder of an earlier run "
            "or 'latest'."
        )
    return str(path)
