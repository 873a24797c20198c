"""Two real CPU processes (gloo DDP) started by `accelerate launch` give the parameters of one process.

The launch command is the one that really starts two synchronised processes on a GPU-less machine:
`ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2` (`--cpu --num_processes 2`
starts ONE process; `--multi_gpu` alone starts two unsynchronised runs, which our check refuses).
"""

from __future__ import annotations

import pytest
import torch
from training_data import (
    BIN,
    SCRIPTS,
    initial_weights,
    load_weights,
    max_abs_diff,
    parse,
    run,
    subprocess_env,
    train_argv,
    write_tiny_dataset,
)

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

LAUNCH = [
    str(BIN / "accelerate"),
    "launch",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "--main_process_port",
    "0",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 40 images, 4 per process x 2 processes: 5 micro-batches per process -> windows [2, 2, 1] with k=2.
    return write_tiny_dataset(tmp_path_factory.mktemp("mp_data"), n_train=40, n_val=6, n_test=6)


@pytest.mark.parametrize(("script", "loop"), [("train_accelerate.py", "accelerate"), ("train.py", "trainer")])
def test_two_processes_match_one(tiny, tmp_path, script, loop):
    data, split = tiny
    two = tmp_path / "two"
    argv = train_argv(data, split, two, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    proc = run(
        [*LAUNCH, "--multi_gpu", "--num_processes", "2", str(SCRIPTS / script), *argv],
        env=subprocess_env(ACCELERATE_USE_CPU="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("processes=2 global_batch=16") == 1  # printed once, by the main process

    one = tmp_path / "one"
    argv = train_argv(data, split, one, per_device_train_batch_size=8, gradient_accumulation_steps=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if loop == "accelerate":
            from cancernet_hf.training.accelerate_loop import train_with_accelerate as train
        else:
            from cancernet_hf.training.trainer import train_with_trainer as train
        metrics = train(*parse(argv))
    finally:
        torch.set_num_threads(threads)
    assert metrics["training"]["global_step"] == 3
    w1, w2 = load_weights(one), load_weights(two)
    assert max_abs_diff(initial_weights("vit-tiny"), w1) > 1e-2
    assert max_abs_diff(w1, w2) < 1e-5  # measured 1.3e-7


def test_unsynchronised_launch_is_refused(tiny, tmp_path):
    """`--multi_gpu` without ACCELERATE_USE_CPU on a GPU-less machine: each process sees 1, WORLD_SIZE=2."""
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine really has two GPUs")
    data, split = tiny
    argv = train_argv(data, split, tmp_path / "out", per_device_train_batch_size=4)
    env = subprocess_env()
    env.pop("ACCELERATE_USE_CPU", None)
    proc = run(
        [*LAUNCH, "--multi_gpu", "--num_processes", "2", str(SCRIPTS / "train_accelerate.py"), *argv], env=env
    )
    assert proc.returncode != 0
    assert "sees 1 process(es) but WORLD_SIZE=2" in proc.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
