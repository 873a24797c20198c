"""The Trainer path: exact gradient accumulation, the member folder it writes, the extras, and learning."""

from __future__ import annotations

import json

import pytest
import torch
from training_data import initial_weights, load_weights, max_abs_diff, parse, train_argv, write_tiny_dataset

from cancernet_hf.constants import METRICS_FILE, RUN_CONFIG_FILE, SPLIT_FILE
from cancernet_hf.training.trainer import train_with_trainer

# 22 training images: batch 16 x 1 gives windows of 16 and 6 images; 4 x 4 gives [4,4,4,4] and a
# short last window [4,2] -- the case where a per-batch mean would weight images wrongly.
N_TRAIN = 22


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on shared cores: threads only add contention
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("trainer_data"), n_train=N_TRAIN, n_val=6, n_test=6)


@pytest.mark.parametrize("preset", ["vit-tiny", "convnext-tiny"])
def test_accumulation_is_exact(tiny, tmp_path, preset):
    """One epoch of 16 x 1 and of 4 x 4 (2 optimiser steps, the second window short) end equal.

    ConvNeXt's head takes **kwargs but ignores num_items_in_batch (transformers #47688): without
    accepts_loss_kwargs=False and the window loss its 4 x 4 update would be 4x too large.
    """
    data, split = tiny
    runs = {}
    for batch, accumulation in ((16, 1), (4, 4)):
        out = tmp_path / f"{batch}x{accumulation}"
        argv = train_argv(
            data,
            split,
            out,
            model_name_or_path=preset,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
        )
        metrics = train_with_trainer(*parse(argv))
        assert metrics["training"]["global_step"] == 2
        runs[(batch, accumulation)] = load_weights(out)
    moved = max_abs_diff(initial_weights(preset), runs[(16, 1)])
    assert moved > 1e-2, "the two steps should move the weights well beyond the tolerance"
    assert max_abs_diff(runs[(16, 1)], runs[(4, 4)]) < 2e-5


def test_member_folder_has_everything(tiny, tmp_path):
    data, split = tiny
    out = tmp_path / "member"
    argv = train_argv(
        data,
        split,
        out,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end="true",
        num_train_epochs=2,
        optim="adamw_torch",
        learning_rate=1e-3,
    )
    metrics = train_with_trainer(*parse(argv))
    for name in (
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "trainer_state.json",
        SPLIT_FILE,
        RUN_CONFIG_FILE,
        METRICS_FILE,
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 26 and config["id2label"]["0"] == "all_benign"
    saved = json.loads((out / METRICS_FILE).read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["split_protocol"] == "random" and saved["model_kind"] == "member"
    for split_name in ("validation", "test"):
        block = saved[split_name]
        assert block["num_images"] == 6
        assert set(block["sub"]) == {"accuracy", "macro_f1"}
        assert {"accuracy", "macro_f1", "accuracy_from_argmax", "macro_f1_from_argmax"} <= set(block["main"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and any("eval_sub_macro_f1" in h for h in state["log_history"])
    run_config = json.loads((out / RUN_CONFIG_FILE).read_text())
    assert (
        run_config["processes"] == 1 and run_config["global_batch"] == 16 and run_config["loop"] == "trainer"
    )


def test_extras_run_and_ema_is_what_is_saved(tiny, tmp_path):
    """Mixup + cutmix, EMA and layer decay together; the saved weights are the EMA of the best checkpoint."""
    data, split = tiny
    out = tmp_path / "extras"
    argv = train_argv(
        data,
        split,
        out,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        label_smoothing_factor=0.1,
        ema_decay=0.9,
        layer_decay=0.75,
        optim="adamw_torch",
        learning_rate=1e-3,
        augment="true",
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end="true",
    )
    train_with_trainer(*parse(argv))
    checkpoint = next(out.glob("checkpoint-*"))
    ema = torch.load(checkpoint / "ema_state.pt", weights_only=True)
    saved = load_weights(out)
    assert ema["num_updates"] == 3  # ceil(22 / 4) = 6 micro-batches -> 3 optimiser steps
    assert max_abs_diff({k: ema["shadow"][k] for k in saved}, saved) < 1e-6


def test_checkpoints_really_reload(tiny, tmp_path):
    """transformers 5.24's Trainer reloads ViT checkpoints with mismatched key names and keeps the
    current weights (only a warning); our Trainer loads through from_pretrained, strictly."""
    from cancernet_hf.training.trainer import build_trainer

    data, split = tiny
    out = tmp_path / "reload"
    argv = train_argv(
        data,
        split,
        out,
        per_device_train_batch_size=8,
        num_train_epochs=2,
        save_strategy="epoch",
        optim="adamw_torch",
        learning_rate=1e-3,
    )
    trainer, _, _ = build_trainer(*parse(argv))
    trainer.train()
    first = min(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert max_abs_diff(trainer.model.state_dict(), load_weights(first)) > 1e-4
    trainer.state.best_model_checkpoint = str(first)
    trainer._load_best_model()
    assert max_abs_diff(trainer.model.state_dict(), load_weights(first)) == 0
