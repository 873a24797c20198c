"""Named member configurations (random init) for the offline demo, the tests and benchmarks.

A preset is data, not a checkpoint: a transformers model type with its config kwargs plus the image
processor that goes with it. `build_member("vit-tiny")` turns one into a model with a fresh head.

- ``*-tiny``: a few hundred thousand parameters at 64 px, so the demo trains on two CPU cores.
  Swin's window is 4 with three stages (16, 8, 4 tokens a side at 64 px): Swin v1 fails once a
  stage's feature map is smaller than its window, which is why the stock window 7 needs >= 224 px.
- ``*-small``: the real architectures at 224 px (ViT-S/16, ConvNeXt-T, Swin-T) for benchmarks.

Regularisation keys (dropout, drop path) are named in `REGULARISATION_KEYS` so a caller that needs
a deterministic forward pass (gradient-accumulation equivalence tests) can switch them off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import (
    AutoConfig,
    BaseImageProcessor,
    ConvNextImageProcessor,
    PretrainedConfig,
    ViTImageProcessor,
)

# ImageNet statistics (what ConvNeXt and Swin checkpoints use) and ViT's symmetric ones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

# Config attributes that inject randomness during training, per model type.
REGULARISATION_KEYS: dict[str, tuple[str, ...]] = {
    "vit": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "convnext": ("drop_path_rate",),
    "swin": ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"),
}

_PROCESSORS: dict[str, type[BaseImageProcessor]] = {
    "ViTImageProcessor": ViTImageProcessor,
    "ConvNextImageProcessor": ConvNextImageProcessor,
}


@dataclass(frozen=True)
class Preset:
    """One named member: model type + config kwargs + image processor kwargs."""

    name: str
    model_type: str
    config: dict[str, Any]
    processor_class: str
    processor: dict[str, Any]
    description: str
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    def make_config(self, **overrides: Any) -> PretrainedConfig:
        """A fresh transformers config; `overrides` (labels, dropout...) win over the preset's values."""
        return AutoConfig.for_model(self.model_type, **{**self.config, **overrides})

    def make_processor(self, image_size: int | None = None) -> BaseImageProcessor:
        """The preset's image processor; `image_size` resizes it along with a model built at that size."""
        kwargs = dict(self.processor)
        if image_size is not None:
            size = kwargs["size"]
            kwargs["size"] = {k: int(image_size) for k in size}  # {"height","width"} or {"shortest_edge"}
        return _PROCESSORS[self.processor_class](**kwargs)


def _vit_processor(size: int) -> dict[str, Any]:
    # As google/vit-*: bilinear warp to size x size, mean/std 0.5.
    return {"size": {"height": size, "width": size}, "image_mean": list(HALF), "image_std": list(HALF)}


def _swin_processor(size: int) -> dict[str, Any]:
    # As microsoft/swin-*: ViTImageProcessor with bicubic resampling and ImageNet statistics.
    return {
        "size": {"height": size, "width": size},
        "resample": 3,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }


def _convnext_processor(size: int) -> dict[str, Any]:
    # As facebook/convnext-*-224: resize the short side to size / crop_pct, centre-crop size x size.
    return {
        "size": {"shortest_edge": size},
        "crop_pct": 0.875,
        "resample": 3,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="vit-tiny",
            model_type="vit",
            config={
                "image_size": 64,
                "patch_size": 8,
                "hidden_size": 96,
                "num_hidden_layers": 4,
                "num_attention_heads": 3,
                "intermediate_size": 192,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            },
            processor_class="ViTImageProcessor",
            processor=_vit_processor(64),
            description="ViT, 4 layers x 96 wide, patch 8 at 64 px (~0.33M parameters), random init",
            tags=("tiny", "demo"),
        ),
        Preset(
            name="convnext-tiny",
            model_type="convnext",
            config={
                "image_size": 64,
                "patch_size": 4,
                "num_stages": 4,
                "hidden_sizes": [16, 32, 64, 128],
                "depths": [1, 1, 2, 1],
                "drop_path_rate": 0.05,
            },
            processor_class="ConvNextImageProcessor",
            processor=_convnext_processor(64),
            description="ConvNeXt, 4 stages 16-128 wide at 64 px (~0.27M parameters), random init",
            tags=("tiny", "demo"),
        ),
        Preset(
            name="swin-tiny",
            model_type="swin",
            config={
                "image_size": 64,
                "patch_size": 4,
                "embed_dim": 24,
                "depths": [1, 2, 2],
                "num_heads": [2, 4, 8],
                "window_size": 4,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "drop_path_rate": 0.05,
            },
            processor_class="ViTImageProcessor",
            processor=_swin_processor(64),
            description="Swin, 3 stages 24-96 wide, window 4 at 64 px (~0.3M parameters), random init",
            tags=("tiny", "demo"),
        ),
        Preset(
            name="vit-small",
            model_type="vit",
            config={
                "image_size": 224,
                "patch_size": 16,
                "hidden_size": 384,
                "num_hidden_layers": 12,
                "num_attention_heads": 6,
                "intermediate_size": 1536,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            },
            processor_class="ViTImageProcessor",
            processor=_vit_processor(224),
            description="ViT-S/16 at 224 px (~22M parameters), random init",
            tags=("small", "benchmark"),
        ),
        Preset(
            name="convnext-small",
            model_type="convnext",
            config={
                "image_size": 224,
                "patch_size": 4,
                "num_stages": 4,
                "hidden_sizes": [96, 192, 384, 768],
                "depths": [3, 3, 9, 3],
                "drop_path_rate": 0.1,
            },
            processor_class="ConvNextImageProcessor",
            processor=_convnext_processor(224),
            description="ConvNeXt-T at 224 px (~28M parameters), random init",
            tags=("small", "benchmark"),
        ),
        Preset(
            name="swin-small",
            model_type="swin",
            config={
                "image_size": 224,
                "patch_size": 4,
                "embed_dim": 96,
                "depths": [2, 2, 6, 2],
                "num_heads": [3, 6, 12, 24],
                "window_size": 7,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "drop_path_rate": 0.1,
            },
            processor_class="ViTImageProcessor",
            processor=_swin_processor(224),
            description="Swin-T (window 7) at 224 px (~28M parameters), random init",
            tags=("small", "benchmark"),
        ),
    )
}


def preset_names() -> list[str]:
    return list(PRESETS)


def describe_presets() -> str:
    """One line per preset, for error messages and `--help`."""
    return "\n".join(f"  {p.name:<15} {p.description}" for p in PRESETS.values())
