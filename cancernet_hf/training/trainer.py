"""The Trainer path: `Trainer` with an exact accumulation loss, our metrics, and the timm-style extras.

Exactness: the loss is a `compute_loss_func` returning sum / `num_items_in_batch` (Trainer counts the
items of the whole accumulation window, across processes), and `model.accepts_loss_kwargs = False`
so heads that take `**kwargs` but ignore `num_items_in_batch` (transformers #47688) never see it.
Runs unchanged under `accelerate launch` / `torchrun`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..constants import METRICS_FILE
from .args import CancerNetTrainingArguments, DataArguments, ModelArguments, resolve_resume
from .common import (
    SeededAugmentation,
    WindowLoss,
    announce,
    build_metrics,
    build_model,
    check_world_size,
    collate,
    load_run_data,
    resolve_taxonomy,
    split_scores,
    write_metrics,
    write_run_config,
)
from .extras import BatchMixer, WeightEma, build_optimizer

logger = logging.getLogger(__name__)

EMA_FILE = "ema_state.pt"


class EmaCallback(TrainerCallback):
    """Updates the EMA after every optimiser step and stores it in every checkpoint."""

    def __init__(self, trainer: CancerNetTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.ema.update(self.trainer.accelerator.unwrap_model(self.trainer.model))

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            torch.save(self.trainer.ema.state_dict(), folder / EMA_FILE)

    def on_train_end(self, args, state, control, **kwargs):
        # The best checkpoint was chosen on EMA weights: finish with that checkpoint's average.
        best = state.best_model_checkpoint
        if args.load_best_model_at_end and best and (Path(best) / EMA_FILE).exists():
            self.trainer.ema.load_state_dict(torch.load(Path(best) / EMA_FILE, weights_only=True))
        self.trainer.ema.copy_to(self.trainer.accelerator.unwrap_model(self.trainer.model))


class EpochCallback(TrainerCallback):
    """Tells the per-sample-seeded training set which epoch starts (also after a resume)."""

    def __init__(self, dataset: SeededAugmentation) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))


class CancerNetTrainer(Trainer):
    """`Trainer` plus mixup/cutmix inside `compute_loss`, layer-wise LR decay and an EMA of the weights."""

    def __init__(self, *a, mixer: BatchMixer | None = None, **kw) -> None:
        super().__init__(*a, **kw)
        self.mixer = mixer
        self.ema: WeightEma | None = None
        if getattr(self.args, "ema_decay", None):
            self.ema = WeightEma(self.model, self.args.ema_decay)
            self.add_callback(EmaCallback(self))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Mixing after Trainer counted the window's items: the count stays the number of images.
        if self.mixer is not None and model.training:
            pixel_values, targets = self.mixer(inputs["pixel_values"], inputs["labels"])
            inputs = {**inputs, "pixel_values": pixel_values, "labels": targets}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def create_optimizer(self, model=None):
        if self.optimizer is None and getattr(self.args, "layer_decay", None):
            self.optimizer = build_optimizer(self.model if model is None else model, self.args)
        return super().create_optimizer(model)

    # transformers 5.24: Trainer reloads checkpoints with a raw `load_state_dict` (strict=False), but
    # save_pretrained writes some models (ViT...) under their legacy key names, so resuming and
    # load_best_model_at_end silently keep the current weights ("missing keys" warning only).
    # Loading through from_pretrained applies the key conversion; strict copy proves it matched.
    def _load_converted(self, folder: str, model=None) -> bool:
        if (
            self.is_deepspeed_enabled
            or self.is_fsdp_enabled
            or not (Path(folder) / "model.safetensors").exists()
        ):
            return False
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        fresh = type(target).from_pretrained(folder)
        target.load_state_dict(fresh.state_dict(), strict=True)
        return True

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._load_converted(resume_from_checkpoint, model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best and self._load_converted(best):
            logger.info("loaded the best checkpoint %s (score %s)", best, self.state.best_metric)
        else:
            super()._load_best_model()

    def evaluate(self, *a, **kw):
        if self.ema is None:
            return super().evaluate(*a, **kw)
        with self.ema.swapped(self.accelerator.unwrap_model(self.model)):
            return super().evaluate(*a, **kw)

    def train(self, resume_from_checkpoint=None, *a, **kw):
        if self.ema is not None and isinstance(resume_from_checkpoint, str):
            ema_path = Path(resume_from_checkpoint) / EMA_FILE
            if ema_path.exists():
                self.ema.load_state_dict(torch.load(ema_path, weights_only=True))
        return super().train(resume_from_checkpoint, *a, **kw)


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CancerNetTrainingArguments,
    *,
    callbacks: Sequence[TrainerCallback] = (),
):
    """(trainer, run_data, taxonomy): everything set up, nothing trained yet."""
    from ..evaluation.scores import make_compute_metrics

    taxonomy = resolve_taxonomy(data_args.taxonomy)
    check_world_size(training_args.world_size)
    announce(
        training_args.world_size,
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        training_args.process_index == 0,
    )
    set_seed(training_args.seed)  # the head is initialised before Trainer seeds
    model, processor = build_model(model_args, taxonomy)
    run_data = load_run_data(data_args, processor, taxonomy, seed=training_args.seed)
    mixer = None
    if training_args.use_mixup:
        mixer = BatchMixer(
            taxonomy.num_sub,
            mixup_alpha=training_args.mixup_alpha,
            cutmix_alpha=training_args.cutmix_alpha,
            prob=training_args.mixup_prob,
            label_smoothing=training_args.label_smoothing_factor,
        )
    train_set = SeededAugmentation(run_data.train, training_args.seed)
    trainer = CancerNetTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=run_data.validation,
        data_collator=collate,
        processing_class=processor,
        compute_metrics=make_compute_metrics(taxonomy),
        compute_loss_func=WindowLoss(training_args.label_smoothing_factor),
        callbacks=[EpochCallback(train_set), *callbacks],
        mixer=mixer,
    )
    return trainer, run_data, taxonomy


def train_with_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CancerNetTrainingArguments,
    *,
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train one member with `Trainer`; write the model, trainer_state.json, split.json, run_config.json and
    metrics.json (validation + test, both levels) to `training_args.output_dir`; return the metrics dict."""
    trainer, run_data, taxonomy = build_trainer(model_args, data_args, training_args, callbacks=callbacks)
    out = Path(training_args.output_dir)
    if trainer.is_world_process_zero():
        write_run_config(
            out,
            model_args,
            data_args,
            training_args,
            loop="trainer",
            num_processes=training_args.world_size,
            taxonomy=taxonomy,
        )
    resume = resolve_resume(training_args.resume_from_checkpoint, out)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()  # the best model when load_best_model_at_end, with the image processor
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    blocks = {}
    for split, dataset in (("validation", run_data.validation), ("test", run_data.test)):
        pred = trainer.predict(dataset, metric_key_prefix=split)
        blocks[split] = split_scores(pred.predictions, pred.label_ids, taxonomy)
        trainer.log_metrics(split, pred.metrics)
        trainer.save_metrics(split, pred.metrics)
    metrics = build_metrics(
        model_name=model_args.model_name_or_path,
        loop="trainer",
        run_data=run_data,
        validation=blocks["validation"],
        test=blocks["test"],
        training={
            "global_step": trainer.state.global_step,
            "epochs": trainer.state.epoch,
            "train_loss": result.metrics.get("train_loss"),
            "runtime_s": round(time.perf_counter() - start, 2),
            "best_checkpoint": os.path.basename(trainer.state.best_model_checkpoint or "") or None,
            "resumed_from": resume,
        },
    )
    if trainer.is_world_process_zero():
        write_metrics(out, metrics)
        logger.info("wrote %s", out / METRICS_FILE)
    return metrics
