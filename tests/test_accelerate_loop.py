"""The plain Accelerate path: exact accumulation (incl. the short last window), outputs, extras."""

from __future__ import annotations

import json

import pytest
import torch
from training_data import initial_weights, load_weights, max_abs_diff, parse, train_argv, write_tiny_dataset

from cancernet_hf.constants import METRICS_FILE, RUN_CONFIG_FILE, SPLIT_FILE
from cancernet_hf.training.accelerate_loop import train_with_accelerate

N_TRAIN = 22  # 16 x 1: windows of 16 and 6 images; 4 x 4: [4,4,4,4] then the short window [4,2]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("accelerate_data"), n_train=N_TRAIN, n_val=6, n_test=6)


@pytest.mark.parametrize("preset", ["vit-tiny", "swin-tiny"])
def test_accumulation_is_exact_with_a_short_last_window(tiny, tmp_path, preset):
    """accelerator.accumulate alone would give the [4,2] window half its gradient (loss / k for k=4
    but only 2 micro-batches); the loop rescales by k * W / items and must match 16 x 1 exactly."""
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
        metrics = train_with_accelerate(*parse(argv))
        assert metrics["training"]["global_step"] == 2
        runs[(batch, accumulation)] = load_weights(out)
    assert max_abs_diff(initial_weights(preset), runs[(16, 1)]) > 1e-2
    assert max_abs_diff(runs[(16, 1)], runs[(4, 4)]) < 2e-5


def test_same_outputs_as_the_trainer_path(tiny, tmp_path):
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
        save_total_limit=1,
        ema_decay=0.9,
        mixup_alpha=0.4,
        layer_decay=0.8,
        augment="true",
    )
    metrics = train_with_accelerate(*parse(argv))
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
    saved = json.loads((out / METRICS_FILE).read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["loop"] == "accelerate" and saved["split_protocol"] == "random"
    assert saved["validation"]["num_images"] == 6 and saved["test"]["num_images"] == 6
    assert set(saved["test"]["main"]) >= {
        "accuracy",
        "macro_f1",
        "accuracy_from_argmax",
        "macro_f1_from_argmax",
    }
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["best_metric"] is not None
    evals = [h for h in state["log_history"] if "eval_sub_macro_f1" in h]
    assert [h["epoch"] for h in evals] == [1.0, 2.0]
    # save_total_limit=1 keeps the best checkpoint, which holds the EMA the final model was taken from.
    best = out / state["best_model_checkpoint"].rsplit("/", 1)[-1]
    assert [p.name for p in out.glob("checkpoint-*")] == [best.name]
    ema = torch.load(best / "ema_state.pt", weights_only=True)
    final = load_weights(out)
    assert max_abs_diff({k: ema["shadow"][k] for k in final}, final) < 1e-6
    assert json.loads((out / RUN_CONFIG_FILE).read_text())["loop"] == "accelerate"


def test_cli_accelerate_loop_in_bf16(tiny, tmp_path, capsys):
    """`cancernet train --loop accelerate ... --bf16`: autocast on CPU, the same member folder."""
    from cancernet_hf.cli import main

    data, split = tiny
    out = tmp_path / "bf16"
    argv = train_argv(
        data,
        split,
        out,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        bf16="true",
        use_cpu="true",
        optim="adamw_torch",
        learning_rate=1e-3,
    )
    assert main(["train", "--loop", "accelerate", *argv]) == 0
    printed = capsys.readouterr().out
    assert "processes=1 global_batch=16" in printed and "validation: sub acc" in printed
    assert json.loads((out / RUN_CONFIG_FILE).read_text())["training"]["bf16"] is True
    assert all(torch.isfinite(v).all() for v in load_weights(out).values())
