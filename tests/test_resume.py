"""A run SIGKILLed right after a mid-epoch checkpoint and resumed ends exactly like an uninterrupted run.

Augmentation is on and the optimiser is AdamW, so the check covers the shuffling order, the
skipped batches, the random augmentation stream, the optimiser and scheduler states.
"""

from __future__ import annotations

import signal
import textwrap

import pytest
import torch
from training_data import (
    load_weights,
    max_abs_diff,
    parse,
    run,
    subprocess_env,
    train_argv,
    write_tiny_dataset,
)

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from cancernet_hf.training.args import parse_args

    loop, kill_at, argv = sys.argv[1], sys.argv[2], sys.argv[3:]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as a pre-empted job

    if loop == "accelerate":
        from cancernet_hf.training.accelerate_loop import train_with_accelerate

        train_with_accelerate(*parse_args(argv), on_checkpoint=lambda folder: folder.name == kill_at and die())
    else:
        from transformers import TrainerCallback
        from cancernet_hf.training.trainer import train_with_trainer

        class Kill(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                if f"checkpoint-{state.global_step}" == kill_at:
                    die()

        train_with_trainer(*parse_args(argv), callbacks=[Kill()])
    """
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("resume_data"), n_train=40, n_val=6, n_test=6)


@pytest.mark.parametrize("loop", ["accelerate", "trainer"])
def test_resume_after_sigkill_matches_uninterrupted(tiny, tmp_path, loop):
    data, split = tiny
    # 40 images, 4 x 2: 5 optimiser steps per epoch, 2 epochs; checkpoint every 3 steps: the kill
    # after checkpoint-3 lands mid-epoch, so the resumed run must skip 6 already-seen micro-batches.
    flags = dict(
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_train_epochs=2,
        optim="adamw_torch",
        learning_rate=3e-3,
        max_grad_norm=1.0,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        augment="true",
        save_strategy="steps",
        save_steps=3,
        eval_strategy="epoch",
    )
    if loop == "trainer":
        from cancernet_hf.training.trainer import train_with_trainer as train
    else:
        from cancernet_hf.training.accelerate_loop import train_with_accelerate as train

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed = tmp_path / "killed"
    proc = run(
        [
            str(__import__("sys").executable),
            str(driver),
            loop,
            "checkpoint-3",
            *train_argv(data, split, killed, **flags),
        ],
        env=subprocess_env(),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / "checkpoint-3").is_dir() and not (killed / "checkpoint-6").exists()
    assert not (killed / "model.safetensors").exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train(*parse(train_argv(data, split, killed, resume_from_checkpoint="latest", **flags)))
        reference = train(*parse(train_argv(data, split, tmp_path / "reference", **flags)))
    finally:
        torch.set_num_threads(threads)
    assert resumed["training"]["resumed_from"].endswith("checkpoint-3")
    assert resumed["training"]["global_step"] == reference["training"]["global_step"] == 10
    assert max_abs_diff(load_weights(killed), load_weights(tmp_path / "reference")) < 1e-6
    for split_name in ("validation", "test"):
        assert flat(resumed[split_name]) == pytest.approx(flat(reference[split_name]), abs=1e-6)


def flat(block: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
