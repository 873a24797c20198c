"""What the Trainer path and the Accelerate path share: setup checks, data, model, loss and run outputs.

Both loops call these, so a member trained either way has the same files: the model (safetensors +
config with labels + preprocessor_config.json), `split.json` (the manifest it used), `run_config.json`
(the resolved arguments) and `metrics.json` (validation and test scores at both label levels).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import DEMO_DATA_NOTICE, METRICS_FILE, RUN_CONFIG_FILE, SPLIT_FILE
from ..data.splits import read_split_protocol
from ..data.synthetic import is_synthetic
from ..errors import SplitError, TrainingSetupError
from ..taxonomy import MULTI_CANCER, Taxonomy, load_taxonomy
from .args import CancerNetTrainingArguments, DataArguments, ModelArguments

logger = logging.getLogger(__name__)


# ---- processes ---------------------------------------------------------------------------------------
def check_world_size(num_processes: int, env: dict[str, str] | None = None) -> None:
    """Refuse to train when the processes this run sees differ from WORLD_SIZE.

    On a GPU-less machine, `accelerate launch --multi_gpu` and `torchrun` without ACCELERATE_USE_CPU=1
    start processes that each see one process (WORLD_SIZE=2): unsynchronised copies of the run, refused
    here. `accelerate launch --cpu --num_processes 2` starts ONE process and sets no WORLD_SIZE: only a
    warning is possible (MASTER_ADDR is set).
    """
    env = os.environ if env is None else env
    declared = env.get("WORLD_SIZE")
    if declared is None:
        if num_processes == 1 and "MASTER_ADDR" in env:
            logger.warning(
                "A launcher set MASTER_ADDR but this run has ONE process and no WORLD_SIZE: if you asked for "
                "several (`accelerate launch --cpu --num_processes N` starts one), use `ACCELERATE_USE_CPU=1 "
                "accelerate launch --multi_gpu --num_processes N` or `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N`."
            )
        return
    try:
        expected = int(declared)
    except ValueError as e:
        raise TrainingSetupError(
            f"WORLD_SIZE={declared!r} is not an integer; unset it or fix the launcher."
        ) from e
    if expected != num_processes:
        raise TrainingSetupError(
            f"This run sees {num_processes} process(es) but WORLD_SIZE={expected}: the launcher did not start a "
            "synchronised group. On CPU use `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes "
            f"{expected} ...` or `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node {expected} ...` (without "
            "ACCELERATE_USE_CPU each process trains alone; `accelerate launch --cpu --num_processes N` starts one "
            "process); on GPUs check that every process sees a device."
        )


def process_line(num_processes: int, per_device_batch: int, accumulation: int) -> str:
    """The one line both entry points print at start: `processes=N global_batch=M`."""
    return f"processes={num_processes} global_batch={per_device_batch * accumulation * num_processes}"


def announce(num_processes: int, per_device_batch: int, accumulation: int, is_main_process: bool) -> str:
    line = process_line(num_processes, per_device_batch, accumulation)
    if is_main_process:
        print(line, flush=True)
    return line


# ---- model --------------------------------------------------------------------------------------------
def resolve_taxonomy(path: str | None) -> Taxonomy:
    return MULTI_CANCER if path is None else load_taxonomy(path)


def build_model(model_args: ModelArguments, taxonomy: Taxonomy):
    """(model, image processor) from C's `build_member`, with `accepts_loss_kwargs` off (#47688)."""
    from ..models.members import build_member, disable_dropout

    model, processor = build_member(model_args.model_name_or_path, taxonomy)
    # Our loss is computed outside the model and normalised by the true item count of the whole
    # accumulation window; the model must not receive `num_items_in_batch` (heads that accept **kwargs
    # but ignore it get their update multiplied by the accumulation steps: transformers #47688).
    model.accepts_loss_kwargs = False
    if model_args.disable_dropout:
        disable_dropout(model)
    return model, processor


# ---- data ---------------------------------------------------------------------------------------------
@dataclass
class RunData:
    """The three transformed splits plus what metrics.json needs to say about them."""

    train: Any
    validation: Any
    test: Any
    split_protocol: str | None
    synthetic_data: bool


def load_run_data(data_args: DataArguments, processor, taxonomy: Taxonomy, *, seed: int = 0) -> RunData:
    """The manifest's train/validation/test splits with train and eval transforms bound to the processor."""
    import datasets

    from ..data.folder import load_image_folder
    from ..data.transforms import build_transforms

    dsd = load_image_folder(data_args.data_dir, taxonomy, split_file=data_args.split_file)
    # Undecoded images reach the transforms, which decode JPEGs in draft mode at the model's size.
    dsd = dsd.cast_column("image", datasets.Image(decode=False))
    missing = [s for s in ("train", "validation", "test") if s not in dsd or len(dsd[s]) == 0]
    if missing:
        raise SplitError(
            f"Split manifest {data_args.split_file!r} gives no images to split(s) {missing} of "
            f"{data_args.data_dir!r}; re-split with fractions that leave each split some images."
        )
    train, validation, test = dsd["train"], dsd["validation"], dsd["test"]
    if data_args.max_train_samples is not None and data_args.max_train_samples < len(train):
        train = train.shuffle(seed=seed).select(range(data_args.max_train_samples))
    if data_args.max_eval_samples is not None:
        validation = validation.select(range(min(len(validation), data_args.max_eval_samples)))
        test = test.select(range(min(len(test), data_args.max_eval_samples)))
    if data_args.augment:
        train.set_transform(build_transforms(processor, taxonomy, train=True, **data_args.augment_options()))
    else:
        train.set_transform(build_transforms(processor, taxonomy, train=False))
    eval_transform = build_transforms(processor, taxonomy, train=False)
    validation.set_transform(eval_transform)
    test.set_transform(eval_transform)
    return RunData(
        train=train,
        validation=validation,
        test=test,
        split_protocol=read_split_protocol(data_args.split_file),
        synthetic_data=is_synthetic(data_args.data_dir),
    )


class SeededAugmentation(torch.utils.data.Dataset):
    """A training split whose random augmentation of image i in epoch e comes from its own seed.

    The transforms draw from the global RNGs; accelerate's loader fetches one batch ahead, so a
    checkpoint's saved RNG state is already past the next batch and a resumed run would augment
    differently. Seeding each sample from (seed, epoch, index) inside a forked RNG makes the
    augmentation independent of the stream position: identical after a resume, and identical for
    one process or many (a sample gets the same crop whichever process loads it).
    """

    def __init__(self, dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_seed = (self.seed * 1_000_003 + self.epoch * 7_919 * 1_000_033 + int(index)) % (2**63 - 1)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            random.seed(sample_seed)
            np.random.seed(sample_seed % 2**32)
            try:
                return self.dataset[int(index)]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack transformed examples into {"pixel_values": (B,3,H,W) float, "labels": (B,) long}."""
    pixel_values = torch.stack([torch.as_tensor(e["pixel_values"], dtype=torch.float32) for e in examples])
    labels = torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long)
    return {"pixel_values": pixel_values, "labels": labels}


# ---- loss ---------------------------------------------------------------------------------------------
def summed_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy SUMMED over the batch: hard (B,) class ids or soft (B, C) targets (mixup/cutmix)."""
    logits = logits.float()
    if targets.is_floating_point() and targets.ndim == 2:
        return -(targets * F.log_softmax(logits, dim=-1)).sum()
    return F.cross_entropy(logits, targets, reduction="sum", label_smoothing=label_smoothing)


class WindowLoss:
    """`compute_loss_func` for Trainer: summed loss / number of items of the whole accumulation window.

    Trainer counts `num_items_in_batch` over every micro-batch of the optimiser step (and across
    processes), so sum / count is the exact per-sample mean of the global batch, whatever the window
    length or the last micro-batch size.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        total = summed_loss(logits, labels, self.label_smoothing)
        count = labels.shape[0] if num_items_in_batch is None else num_items_in_batch
        return total / count


# ---- scores and outputs -------------------------------------------------------------------------------
def split_scores(logits: np.ndarray, labels: np.ndarray, taxonomy: Taxonomy) -> dict[str, Any]:
    """One split's block of metrics.json: both label levels from the softmax of the logits."""
    from ..evaluation.scores import classification_scores, softmax

    probs = softmax(logits)
    s = classification_scores(probs, labels, taxonomy)
    nll = (
        float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
        if len(labels)
        else None
    )
    return {
        "num_images": int(len(labels)),
        "loss": nll,
        "sub": {"accuracy": s["sub_accuracy"], "macro_f1": s["sub_macro_f1"]},
        "main": {
            "accuracy": s["main_accuracy"],
            "macro_f1": s["main_macro_f1"],
            "accuracy_from_argmax": s["main_accuracy_from_argmax"],
            "macro_f1_from_argmax": s["main_macro_f1_from_argmax"],
        },
    }


def write_run_config(
    output_dir: str | Path,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CancerNetTrainingArguments,
    *,
    loop: str,
    num_processes: int,
    taxonomy: Taxonomy,
) -> None:
    """Copy the split manifest and save the resolved configuration beside the outputs."""
    import accelerate
    import transformers

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(data_args.split_file, out / SPLIT_FILE)
    data = asdict(data_args)
    data["data_dir"] = str(Path(data_args.data_dir).resolve())
    data["split_file"] = str(Path(data_args.split_file).resolve())
    config = {
        "loop": loop,
        "model": asdict(model_args),
        "data": data,
        "taxonomy": taxonomy.name,
        "processes": num_processes,
        "global_batch": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * num_processes,
        "training": json.loads(training_args.to_json_string()),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
        },
    }
    (out / RUN_CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")


def build_metrics(
    *,
    model_name: str,
    loop: str,
    run_data: RunData,
    validation: dict[str, Any],
    test: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": model_name,
        "model_kind": "member",
        "loop": loop,
        "split_protocol": run_data.split_protocol,
        "synthetic_data": run_data.synthetic_data,
        "notice": DEMO_DATA_NOTICE if run_data.synthetic_data else None,
        "validation": validation,
        "test": test,
        "training": training,
    }


def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    path = Path(output_dir) / METRICS_FILE
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return path


def format_scores(metrics: dict[str, Any], split: str = "validation") -> str:
    """One line for people: `validation: sub acc 0.812 F1 0.790 | main acc 0.950 F1 0.941 (n=130)`."""
    b = metrics[split]
    return (
        f"{split}: sub acc {b['sub']['accuracy']:.3f} F1 {b['sub']['macro_f1']:.3f} | "
        f"main acc {b['main']['accuracy']:.3f} F1 {b['main']['macro_f1']:.3f} (n={b['num_images']})"
    )
