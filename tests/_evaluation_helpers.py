"""Shared tiny inputs for the evaluation tests: a 3-class taxonomy, fixed predictions, a folder, a member."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from cancernet_hf.constants import SYNTH_MANIFEST_FILE
from cancernet_hf.taxonomy import SubClass, Taxonomy

# 3 sub-classes in 2 main classes: a1 -> A; b1, b2 -> B.
TINY = Taxonomy(
    name="tiny",
    main_classes=("A", "B"),
    sub_classes=(
        SubClass("a1", "A", "a one", "H&E histopathology", True),
        SubClass("b1", "B", "b one", "CT", False),
        SubClass("b2", "B", "b two", "CT", False),
    ),
)

PROBS = np.array(
    [
        [0.70, 0.20, 0.10],  # true a1 -> a1 ; main A (sum) ; A (argmax)
        [0.60, 0.30, 0.10],  # true a1 -> a1 ; A ; A
        [0.10, 0.80, 0.10],  # true b1 -> b1 ; B ; B
        [0.20, 0.30, 0.50],  # true b1 -> b2 ; B ; B
        [0.10, 0.10, 0.80],  # true b2 -> b2 ; B ; B
        [0.45, 0.30, 0.25],  # true b2 -> a1 ; B (0.55 summed) ; A (argmax's main)
    ]
)
LABELS = np.array([0, 0, 1, 1, 2, 2])

# Per class: image 0 -> train, 1 -> validation, 2 and 3 -> test.
SPLIT_OF_INDEX = ("train", "validation", "test", "test")


def make_tiny_dataset(root: Path, *, synthetic: bool = False, size: int = 32) -> tuple[Path, Path]:
    """<root>/<Main>/<sub>/<sub>_<n>.png, 4 coloured images per class, and <root>/../split.json."""
    rng = np.random.default_rng(0)
    files = {}
    for k, sub in enumerate(TINY.sub_classes):
        folder = root / sub.main / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        for n, split in enumerate(SPLIT_OF_INDEX):
            pixels = rng.integers(0, 256, size=(size, size, 3))
            pixels[..., k] = 230 - 40 * n  # a colour per class
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{sub.name}_{n}.png")
            files[f"{sub.main}/{sub.name}/{sub.name}_{n}.png"] = {"split": split, "group": 10 * k + n}
    if synthetic:
        (root / SYNTH_MANIFEST_FILE).write_text(json.dumps({"generator": "tests"}))
    split_file = root.parent / "split.json"
    manifest = {
        "protocol": "group",
        "seed": 0,
        "fractions": [0.25, 0.25, 0.5],
        "threshold": 0,
        "files": files,
        "summary": {},
    }
    split_file.write_text(json.dumps(manifest, indent=1))
    return root, split_file


def make_member(path: Path) -> Path:
    """A saved vit-tiny member (random init, seeded) for the tiny taxonomy."""
    import torch

    from cancernet_hf.models.members import build_member

    torch.manual_seed(0)
    model, processor = build_member("vit-tiny", TINY)
    with torch.no_grad():  # sharper than a fresh head: predictions differ between images
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def make_ensemble(path: Path) -> Path:
    """A saved two-member ensemble folder (remote code + custom pipeline) for the tiny taxonomy."""
    import torch

    from cancernet_hf.ensemble_build import assemble_ensemble, save_ensemble
    from cancernet_hf.models.members import build_member

    members = []
    for seed, preset in enumerate(("vit-tiny", "convnext-tiny")):
        torch.manual_seed(seed)
        model, processor = build_member(preset, TINY)
        members.append((preset, model.eval(), processor))
    ensemble = assemble_ensemble(members, TINY, weights=[0.7, 0.3], temperatures=[0.5, 2.0])
    return save_ensemble(ensemble, path)
