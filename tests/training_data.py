"""Tiny image folders and argument sets for the training tests (imported by tests/test_*.py).

Images are class-coloured noise (26 classes, 32 px PNG): cheap to write, learnable, and enough to
check accumulation, multi-process and resume equivalence; the learning test uses helper B's demo data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cancernet_hf.taxonomy import MULTI_CANCER

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent


def write_tiny_dataset(
    root: Path, *, n_train: int, n_val: int = 26, n_test: int = 26, size: int = 32, seed: int = 0
) -> tuple[Path, Path]:
    """<root>/data/<Main>/<sub>/<sub>_<i>.png plus <root>/split.json (manifest schema of data/splits.py)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    subs = MULTI_CANCER.sub_classes
    files: dict[str, dict] = {}
    counter = 0
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        for i in range(n):
            sub = subs[i % len(subs)]
            colour = np.array([(37 * (i % 26)) % 256, (91 * (i % 26)) % 256, (151 * (i % 26)) % 256])
            pixels = np.clip(colour + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            rel = f"{sub.main}/{sub.name}/{sub.name}_{counter}.png"
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(data / rel)
            files[rel] = {"split": split, "group": counter}
            counter += 1
    split_file = root / "split.json"
    split_file.write_text(
        json.dumps(
            {"protocol": "random", "seed": seed, "fractions": [0.8, 0.1, 0.1], "threshold": 0, "files": files}
        )
    )
    return data, split_file


def train_argv(data: Path, split_file: Path, out: Path, **flags) -> list[str]:
    """Flags for scripts/train*.py: deterministic (no dropout, no augmentation, plain SGD, no clipping)."""
    base = {
        "model_name_or_path": "vit-tiny",
        "data_dir": str(data),
        "split_file": str(split_file),
        "output_dir": str(out),
        "disable_dropout": "true",
        "augment": "false",
        "optim": "sgd",
        "learning_rate": "0.5",
        "lr_scheduler_type": "constant",
        "weight_decay": "0",
        "max_grad_norm": "0",
        "num_train_epochs": "1",
        "eval_strategy": "no",
        "save_strategy": "no",
        "load_best_model_at_end": "false",
        "report_to": "none",
        "disable_tqdm": "true",
        "per_device_eval_batch_size": "32",
        "seed": "0",
    }
    base.update({k: str(v) for k, v in flags.items()})
    argv: list[str] = []
    for k, v in base.items():
        argv += [f"--{k}", v]
    return argv


def parse(argv: list[str]):
    from cancernet_hf.training.args import parse_args

    return parse_args(argv)


def load_weights(folder: Path) -> dict:
    """The saved member's parameters under the in-memory names (5.x renames some keys on save)."""
    from transformers import AutoModelForImageClassification

    return AutoModelForImageClassification.from_pretrained(str(folder)).state_dict()


def initial_weights(preset: str, seed: int = 0) -> dict:
    """The weights a run with this seed starts from (both loops seed, then build the member)."""
    from transformers import set_seed

    from cancernet_hf.models.members import build_member

    set_seed(seed)
    return build_member(preset)[0].state_dict()


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def max_change(a: dict, b: dict) -> float:
    return max_abs_diff(a, b)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"WORLD_SIZE", "RANK", "LOCAL_RANK"}}
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
