"""Tiny run folders for the publishing tests, written in the formats the other stages produce.

A member folder holds a real (tiny, random) ViT saved with `save_pretrained`, its image processor,
a split manifest, a run config, a trainer state and metrics; an evaluation report folder holds a
metrics.json in the report schema plus PNG plots. Nothing here trains anything.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

from cancernet_hf.constants import METRICS_FILE, RUN_CONFIG_FILE, SPLIT_FILE, SYNTH_MANIFEST_FILE
from cancernet_hf.taxonomy import MULTI_CANCER

IMAGE_SIZE = 32


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def make_data_dir(root: Path, *, per_class: int = 2, synthetic: bool = True, seed: int = 0) -> Path:
    """Images in the real layout <Main>/<sub>/<sub>_<n>.jpg (plus the synthetic manifest when asked)."""
    rng = np.random.default_rng(seed)
    for sub in MULTI_CANCER.sub_classes:
        folder = root / sub.main / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, per_class + 1):
            pixels = rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{sub.name}_{n}.jpg", quality=90)
    if synthetic:
        write_json(root / SYNTH_MANIFEST_FILE, {"generator": "test", "seed": seed})
    return root


def split_manifest(data_dir: Path, *, protocol: str = "group") -> dict:
    """A manifest in the split.json schema: 1st image of a class to train, 2nd to validation, 3rd to test."""
    files, group = {}, 0
    for sub in MULTI_CANCER.sub_classes:
        for n, path in enumerate(sorted((data_dir / sub.main / sub.name).glob("*.jpg"))):
            split = ("train", "validation", "test", "train")[n % 4]
            files[path.relative_to(data_dir).as_posix()] = {"split": split, "group": group}
            group += 1
    return {
        "protocol": protocol,
        "seed": 0,
        "fractions": [0.8, 0.1, 0.1],
        "threshold": 6,
        "data_dir": str(data_dir),
        "files": files,
        "summary": {},
    }


def make_member(out: Path, data_dir: Path, *, seed: int = 0) -> Path:
    """A member folder as `cancernet train` writes it, with a tiny random ViT."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=MULTI_CANCER.num_sub,
        id2label=MULTI_CANCER.id2label,
        label2id=MULTI_CANCER.label2id,
    )
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    write_json(out / SPLIT_FILE, split_manifest(data_dir))
    write_json(
        out / RUN_CONFIG_FILE,
        {
            "model": {"model_name_or_path": "vit-tiny"},
            "data": {"data_dir": str(data_dir), "split_file": str(out / SPLIT_FILE)},
            "training": {
                "learning_rate": 5e-4,
                "per_device_train_batch_size": 8,
                "gradient_accumulation_steps": 2,
                "num_train_epochs": 1,
                "seed": seed,
                "bf16": False,
                "fp16": False,
            },
            "environment": {"num_processes": 1, "device": "cpu", "torch_version": torch.__version__},
        },
    )
    write_json(
        out / "trainer_state.json",
        {
            "global_step": 4,
            "epoch": 1.0,
            "best_metric": 0.0385,
            "best_model_checkpoint": str(out / "checkpoint-4"),
            "log_history": [
                {"loss": 3.31, "step": 2, "epoch": 0.5},
                {"loss": 3.27, "step": 4, "epoch": 1.0},
                {"train_runtime": 2.5, "step": 4, "epoch": 1.0},
            ],
        },
    )
    # The training run's own metrics: classification_scores keys per split.
    write_json(
        out / METRICS_FILE,
        {
            "split_protocol": "group",
            "validation": {
                "sub_accuracy": 0.0385,
                "sub_macro_f1": 0.0074,
                "main_accuracy": 0.1538,
                "main_macro_f1": 0.0408,
            },
            "test": {
                "sub_accuracy": 0.0769,
                "sub_macro_f1": 0.0143,
                "main_accuracy": 0.1923,
                "main_macro_f1": 0.05,
            },
        },
    )
    return out


def make_report(
    out: Path, *, model: str, kind: str = "member", synthetic: bool = True, seed: int = 0
) -> Path:
    """An evaluation report folder: metrics.json in the report schema plus two PNG plots."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("confusion_matrix", "reliability_diagram"):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(out / f"{name}.png")
    per_class = {
        s: {"precision": 0.5, "recall": 0.25, "f1": round(1 / 3, 4), "support": 1}
        for s in MULTI_CANCER.sub_names
    }
    write_json(
        out / METRICS_FILE,
        {
            "model": model,
            "model_kind": kind,
            "split": "test",
            "split_protocol": "group",
            "num_images": 26,
            "synthetic_data": synthetic,
            "notice": "SYNTHETIC DEMO DATA: these figures prove the machinery, not medical performance."
            if synthetic
            else None,
            "sub": {"accuracy": 0.1154, "macro_f1": 0.0821, "balanced_accuracy": 0.1154},
            "main": {"accuracy": 0.3077, "macro_f1": 0.2143, "balanced_accuracy": 0.25},
            "per_class": per_class,
            "calibration": {
                "ece": 0.0512,
                "ece_after_temperature": 0.0311,
                "temperature": 1.42,
                "nll": 3.2001,
            },
            "aurc": 0.7712,
            "plots": {
                "confusion_matrix": "confusion_matrix.png",
                "reliability_diagram": "reliability_diagram.png",
            },
        },
    )
    return out


def make_ensemble(out: Path, member_dirs: list[Path], data_dir: Path) -> Path | None:
    """An ensemble folder built by E's `build_ensemble` (fitted on the validation split), or None while
    `cancernet_hf.ensemble_build` is not in this checkout."""
    if importlib.util.find_spec("cancernet_hf.ensemble_build") is None:
        return None
    from cancernet_hf.ensemble_build import build_ensemble

    return Path(build_ensemble(member_dirs, data_dir, member_dirs[0] / SPLIT_FILE, out, progress=False))
