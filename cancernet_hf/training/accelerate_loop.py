"""The plain Accelerate path: one readable loop with `accelerator.accumulate`, gathered evaluation,
`save_state`/`load_state` checkpoints and resume; same outputs as the Trainer path.

Exact accumulation: `accelerator.backward` divides every micro-batch loss by k and DDP averages over
the W processes, so a short last window of an epoch (fewer than k micro-batches) would get a
fraction of its gradient. Here each micro-batch backpropagates its SUMMED loss, and before the
optimiser step the gradients are multiplied by k * W / n, where n is the number of images of the
whole window on all processes: the step always follows the per-image mean of the window.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..constants import METRICS_FILE
from .args import CancerNetTrainingArguments, DataArguments, ModelArguments, resolve_resume
from .common import (
    SeededAugmentation,
    announce,
    build_metrics,
    build_model,
    check_world_size,
    collate,
    load_run_data,
    resolve_taxonomy,
    split_scores,
    summed_loss,
    write_metrics,
    write_run_config,
)
from .extras import BatchMixer, WeightEma, build_optimizer

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"
STATE_FILE = "trainer_state.json"  # same name and format as Trainer's, so get_last_checkpoint works
EMA_FILE = "ema_state.pt"


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))


def _every(value: float, max_steps: int) -> int:
    """`--save_steps/--eval_steps/--logging_steps`: an integer, or a fraction (< 1) of the total steps."""
    return max(1, int(value) if value >= 1 else math.ceil(max_steps * value))


def _mixed_precision(args: CancerNetTrainingArguments) -> str | None:
    # None lets `accelerate launch --mixed_precision` / the config file decide.
    return "bf16" if args.bf16 else "fp16" if args.fp16 else None


def _trackers(args: CancerNetTrainingArguments) -> list[str] | None:
    report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    names = [r for r in report_to if r and r not in {"none", "all"}]
    return names or None


@torch.inference_mode()
def gathered_predict(accelerator, model, loader) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of a whole split, gathered from all processes without the padding duplicates."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        logits = model(pixel_values=batch["pixel_values"]).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.cpu().numpy())
        all_labels.append(labels.cpu().numpy())
    return np.concatenate(all_logits), np.concatenate(all_labels)


class _Loop:
    """State of one Accelerate run; `run()` trains, evaluates, checkpoints and writes the outputs."""

    def __init__(self, model_args, data_args, args, on_checkpoint):
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        self.model_args, self.data_args, self.args = model_args, data_args, args
        self.on_checkpoint = on_checkpoint
        self.out = Path(args.output_dir)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            mixed_precision=_mixed_precision(args),
            cpu=args.use_cpu,
            log_with=_trackers(args),
            project_dir=str(self.out),
            # Shuffling from seed + epoch: a resumed run sees the same order and skips what it saw.
            dataloader_config=DataLoaderConfiguration(
                use_seedable_sampler=True, data_seed=args.data_seed or args.seed
            ),
        )
        acc = self.accelerator
        check_world_size(acc.num_processes)
        announce(
            acc.num_processes,
            args.per_device_train_batch_size,
            args.gradient_accumulation_steps,
            acc.is_main_process,
        )
        set_seed(args.seed)
        self.taxonomy = resolve_taxonomy(data_args.taxonomy)
        model, self.processor = build_model(model_args, self.taxonomy)
        self.run_data = load_run_data(data_args, self.processor, self.taxonomy, seed=args.seed)

        def loader(dataset, batch_size, shuffle):
            # A private generator: the loader's base-seed draw must not consume the global RNG
            # (augmentations use it, and a resumed run must see the same random stream).
            return DataLoader(
                dataset,
                batch_size=batch_size,
                shuffle=shuffle,
                collate_fn=collate,
                num_workers=args.dataloader_num_workers,
                drop_last=shuffle and args.dataloader_drop_last,
                generator=torch.Generator().manual_seed(args.seed),
            )

        self.train_set = SeededAugmentation(self.run_data.train, args.seed)
        optimizer = build_optimizer(model, args)
        self.model, self.optimizer, self.train_dl, self.val_dl, self.test_dl = acc.prepare(
            model,
            optimizer,
            loader(self.train_set, args.per_device_train_batch_size, True),
            loader(self.run_data.validation, args.per_device_eval_batch_size, False),
            loader(self.run_data.test, args.per_device_eval_batch_size, False),
        )
        k = args.gradient_accumulation_steps
        self.updates_per_epoch = math.ceil(len(self.train_dl) / k)
        if args.max_steps > 0:
            self.max_steps = args.max_steps
        else:
            self.max_steps = math.ceil(args.num_train_epochs * self.updates_per_epoch)
        self.num_epochs = math.ceil(self.max_steps / self.updates_per_epoch)
        from transformers import get_scheduler

        # Not passed to prepare(): it steps once per optimiser step here, whatever the process count.
        self.scheduler = get_scheduler(
            args.lr_scheduler_type,
            self.optimizer.optimizer,
            num_warmup_steps=args.get_warmup_steps(self.max_steps),
            num_training_steps=self.max_steps,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs or {},
        )
        acc.register_for_checkpointing(self.scheduler)
        unwrapped = acc.unwrap_model(self.model)
        self.ema = WeightEma(unwrapped, args.ema_decay) if args.ema_decay else None
        self.mixer = None
        if args.use_mixup:
            self.mixer = BatchMixer(
                self.taxonomy.num_sub,
                mixup_alpha=args.mixup_alpha,
                cutmix_alpha=args.cutmix_alpha,
                prob=args.mixup_prob,
                label_smoothing=args.label_smoothing_factor,
            )
        from transformers import TrainerState

        self.state = TrainerState(
            max_steps=self.max_steps,
            num_train_epochs=self.num_epochs,
            train_batch_size=args.per_device_train_batch_size,
            logging_steps=_every(args.logging_steps, self.max_steps),
            eval_steps=_every(args.eval_steps or args.logging_steps, self.max_steps),
            save_steps=_every(args.save_steps, self.max_steps),
        )

    # ---- checkpoints --------------------------------------------------------------------------------
    def _save_checkpoint(self) -> Path:
        acc = self.accelerator
        folder = self.out / f"{CHECKPOINT_PREFIX}-{self.state.global_step}"
        tmp = self.out / f"tmp-{folder.name}"
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if acc.is_main_process:
            if self.ema is not None:
                torch.save(self.ema.state_dict(), tmp / EMA_FILE)
            self.state.save_to_json(str(tmp / STATE_FILE))
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)  # a checkpoint-N folder is always complete
            self._rotate(folder)
        acc.wait_for_everyone()
        if self.on_checkpoint is not None:
            self.on_checkpoint(folder)
        return folder

    def _rotate(self, newest: Path) -> None:
        limit = self.args.save_total_limit
        if not limit:
            return
        found = sorted(self.out.glob(f"{CHECKPOINT_PREFIX}-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
        best = self.state.best_model_checkpoint
        keep = set(found[-limit:]) | ({Path(best)} if best else set()) | {newest}
        for path in found:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def _resume(self, checkpoint: str) -> int:
        """Load a checkpoint; return how many micro-batches of its epoch were already consumed."""
        from transformers import TrainerState

        self.accelerator.load_state(checkpoint)
        saved = TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE))
        self.state.global_step = saved.global_step
        self.state.log_history = saved.log_history
        self.state.best_metric = saved.best_metric
        self.state.best_global_step = saved.best_global_step
        self.state.best_model_checkpoint = saved.best_model_checkpoint
        if self.ema is not None and (Path(checkpoint) / EMA_FILE).exists():
            self.ema.load_state_dict(torch.load(Path(checkpoint) / EMA_FILE, weights_only=True))
        logger.info("resumed from %s at step %d", checkpoint, saved.global_step)
        return (saved.global_step % self.updates_per_epoch) * self.args.gradient_accumulation_steps

    # ---- evaluation ---------------------------------------------------------------------------------
    def _evaluate(self) -> dict[str, float]:
        from ..evaluation.scores import classification_scores, softmax

        unwrapped = self.accelerator.unwrap_model(self.model)
        ctx = self.ema.swapped(unwrapped) if self.ema is not None else _nullcontext()
        with ctx:
            logits, labels = gathered_predict(self.accelerator, self.model, self.val_dl)
        probs = softmax(logits)
        metrics = {
            "eval_loss": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())
        }
        metrics.update(
            {f"eval_{k}": v for k, v in classification_scores(probs, labels, self.taxonomy).items()}
        )
        self._log(metrics)
        name = self.args.metric_for_best_model or "loss"
        name = name if name.startswith("eval_") else f"eval_{name}"
        value = metrics[name]
        greater = (
            self.args.greater_is_better if self.args.greater_is_better is not None else name != "eval_loss"
        )
        best = self.state.best_metric
        if best is None or (value > best if greater else value < best):
            self.state.best_metric = value
            self.state.best_global_step = self.state.global_step
            self._new_best = True
        return metrics

    def _log(self, entry: dict[str, float]) -> None:
        entry = {
            **entry,
            "epoch": round(self.state.global_step / self.updates_per_epoch, 4),
            "step": self.state.global_step,
        }
        self.state.log_history.append(entry)
        self.accelerator.log(entry, step=self.state.global_step)
        if self.accelerator.is_main_process:
            logger.info("%s", {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()})

    def _log_loss(self, losses: list[float]) -> None:
        if losses:
            self._log({"loss": float(np.mean(losses)), "learning_rate": self.scheduler.get_last_lr()[0]})

    def _maybe_eval_and_save(self, epoch_end: bool) -> None:
        args, step = self.args, self.state.global_step
        eval_s, save_s = _strategy(args.eval_strategy), _strategy(args.save_strategy)
        due = {"epoch": epoch_end, "steps": step % self.state.eval_steps == 0}
        self._new_best = False
        if due.get(eval_s, False):
            self._evaluate()
        save_due = {"epoch": epoch_end, "steps": step % self.state.save_steps == 0, "best": self._new_best}
        if save_due.get(save_s, False):
            folder = self.out / f"{CHECKPOINT_PREFIX}-{step}"
            if self._new_best:
                self.state.best_model_checkpoint = str(folder)
            self._save_checkpoint()

    # ---- training -----------------------------------------------------------------------------------
    def _train_step(self, batch, window: dict) -> None:
        acc, args = self.accelerator, self.args
        with acc.accumulate(self.model):
            pixel_values, labels = batch["pixel_values"], batch["labels"]
            targets = labels
            if self.mixer is not None:
                pixel_values, targets = self.mixer(pixel_values, labels)
            logits = self.model(pixel_values=pixel_values).logits
            loss = summed_loss(logits, targets, args.label_smoothing_factor)
            acc.backward(loss)
            window["items"] += labels.shape[0]
            window["loss"] += loss.detach().float()
            if acc.sync_gradients:
                totals = acc.reduce(
                    torch.stack([torch.tensor(float(window["items"]), device=acc.device), window["loss"]]),
                    "sum",
                )
                scale = args.gradient_accumulation_steps * acc.num_processes / totals[0]
                for p in self.model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(scale.to(p.grad.dtype))
                if args.max_grad_norm and args.max_grad_norm > 0:
                    acc.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                window["mean_loss"] = float(totals[1] / totals[0])
            self.optimizer.step()  # a no-op until the window is complete (AcceleratedOptimizer)
            if acc.sync_gradients and not acc.optimizer_step_was_skipped:
                self.scheduler.step()
            self.optimizer.zero_grad()

    def run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        acc, args = self.accelerator, self.args
        if acc.is_main_process:
            write_run_config(
                self.out,
                self.model_args,
                self.data_args,
                args,
                loop="accelerate",
                num_processes=acc.num_processes,
                taxonomy=self.taxonomy,
            )
        if _trackers(args):
            acc.init_trackers(
                Path(args.output_dir).name, config={"model": self.model_args.model_name_or_path}
            )
        resume = resolve_resume(args.resume_from_checkpoint, self.out)
        skip = self._resume(resume) if resume else 0
        start_epoch = self.state.global_step // self.updates_per_epoch
        start = time.perf_counter()
        bar = tqdm(
            total=self.max_steps,
            initial=self.state.global_step,
            disable=not acc.is_local_main_process,
            desc=f"train {self.model_args.model_name_or_path}",
        )
        losses: list[float] = []
        log_every = _strategy(args.logging_strategy)
        for epoch in range(start_epoch, self.num_epochs):
            if self.state.global_step >= self.max_steps:
                break
            self.model.train()
            epoch_start = len(losses)
            self.train_dl.set_epoch(epoch)
            self.train_set.set_epoch(epoch)
            dl = (
                acc.skip_first_batches(self.train_dl, skip)
                if (epoch == start_epoch and skip)
                else self.train_dl
            )
            window = {"items": 0, "loss": torch.zeros((), device=acc.device)}
            for batch in dl:
                self._train_step(batch, window)
                if not acc.sync_gradients:
                    continue
                self.state.global_step += 1
                self.state.epoch = self.state.global_step / self.updates_per_epoch
                losses.append(window["mean_loss"])
                window = {"items": 0, "loss": torch.zeros((), device=acc.device)}
                if self.ema is not None:
                    self.ema.update(acc.unwrap_model(self.model))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if log_every == "steps" and self.state.global_step % self.state.logging_steps == 0:
                    self._log_loss(losses[-self.state.logging_steps :])
                epoch_end = self.state.global_step % self.updates_per_epoch == 0
                if not epoch_end:
                    self._maybe_eval_and_save(epoch_end=False)
                    self.model.train()
                if self.state.global_step >= self.max_steps:
                    break
            if log_every == "epoch":
                self._log_loss(losses[epoch_start:])
            self._maybe_eval_and_save(epoch_end=True)
        bar.close()
        runtime = time.perf_counter() - start
        return self._finish(resume, runtime, float(np.mean(losses)) if losses else None)

    def _finish(self, resume: str | None, runtime: float, train_loss: float | None) -> dict[str, Any]:
        from safetensors.torch import load_file

        acc, args = self.accelerator, self.args
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(self.model)
        best = self.state.best_model_checkpoint
        if args.load_best_model_at_end and best and Path(best).is_dir():
            if self.ema is not None and (Path(best) / EMA_FILE).exists():
                self.ema.load_state_dict(torch.load(Path(best) / EMA_FILE, weights_only=True))
            else:
                weights = Path(best) / "model.safetensors"
                unwrapped.load_state_dict(load_file(str(weights)))
            logger.info(
                "loaded the best checkpoint %s (%s=%s)",
                best,
                args.metric_for_best_model,
                self.state.best_metric,
            )
        if self.ema is not None:
            self.ema.copy_to(unwrapped)
        if acc.is_main_process and best and args.save_total_limit == 1:
            # As Trainer: with a limit of one, only the best checkpoint outlives the run.
            for path in self.out.glob(f"{CHECKPOINT_PREFIX}-*"):
                if path.name != Path(best).name:
                    shutil.rmtree(path, ignore_errors=True)
        unwrapped.save_pretrained(self.out, is_main_process=acc.is_main_process, save_function=acc.save)
        if acc.is_main_process:
            self.processor.save_pretrained(self.out)
            self.state.save_to_json(str(self.out / STATE_FILE))
        blocks = {}
        for split, dl in (("validation", self.val_dl), ("test", self.test_dl)):
            logits, labels = gathered_predict(acc, self.model, dl)
            blocks[split] = split_scores(logits, labels, self.taxonomy)
        metrics = build_metrics(
            model_name=self.model_args.model_name_or_path,
            loop="accelerate",
            run_data=self.run_data,
            validation=blocks["validation"],
            test=blocks["test"],
            training={
                "global_step": self.state.global_step,
                "epochs": self.state.global_step / self.updates_per_epoch,
                "train_loss": train_loss,
                "runtime_s": round(runtime, 2),
                "best_checkpoint": Path(best).name if best else None,
                "resumed_from": resume,
            },
        )
        if acc.is_main_process:
            write_metrics(self.out, metrics)
            logger.info("wrote %s", self.out / METRICS_FILE)
        acc.end_training()
        return metrics


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def train_with_accelerate(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: CancerNetTrainingArguments,
    *,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Train one member with the plain Accelerate loop; same outputs and metrics dict as the Trainer path.

    `on_checkpoint(folder)` is called on every process after each complete checkpoint (e.g. to upload it).
    """
    return _Loop(model_args, data_args, training_args, on_checkpoint).run()
