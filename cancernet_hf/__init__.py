"""CancerNet-HF: train, ensemble, publish and serve cancer image classifiers the Hugging Face way.

The ~10 names below are the whole top-level API, one per step of the chain; each is imported on first
use so `import cancernet_hf` (and the `cancernet` command's start-up) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from .taxonomy import MULTI_CANCER, Taxonomy, load_taxonomy

__version__ = "0.1.0"

# name -> module that defines it, in the order of the chain.
_LAZY = {
    "scan_folder": ".data.folder",
    "load_image_folder": ".data.folder",
    "make_split": ".data.splits",
    "generate_demo_dataset": ".data.synthetic",
    "build_member": ".models.members",
    "train_member": ".training.recipe",
    "build_ensemble": ".ensemble_build",
    "evaluate_model": ".evaluation.report",
    "push_model": ".hub.publish",
}

__all__ = ["MULTI_CANCER", "Taxonomy", "load_taxonomy", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'cancernet_hf' has no attribute {name!r}")
