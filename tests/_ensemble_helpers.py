"""Tiny untrained members of three families at three sizes, shared by the ensemble tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import ConvNextImageProcessor, ViTImageProcessor

from cancernet_hf.models.members import build_member
from cancernet_hf.models.presets import HALF, IMAGENET_MEAN, IMAGENET_STD
from cancernet_hf.taxonomy import MULTI_CANCER

# ViT at 32 px (bilinear warp), ConvNeXt at 48 px (resize + centre crop 0.875), Swin at 64 px (bicubic).
SIZES = {"vit": 32, "convnext": 48, "swin": 64}


def tiny_members(seed: int = 0) -> list[tuple[str, nn.Module, object]]:
    """(name, model, processor) for a ViT, a ConvNeXt and a Swin with different input sizes."""
    torch.manual_seed(seed)
    vit, _ = build_member("vit-tiny", MULTI_CANCER, image_size=SIZES["vit"])
    vit_processor = ViTImageProcessor(
        size={"height": SIZES["vit"], "width": SIZES["vit"]}, image_mean=list(HALF), image_std=list(HALF)
    )
    convnext, _ = build_member("convnext-tiny", MULTI_CANCER, image_size=SIZES["convnext"])
    convnext_processor = ConvNextImageProcessor(
        size={"shortest_edge": SIZES["convnext"]},
        crop_pct=0.875,
        resample=3,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )
    swin, swin_processor = build_member("swin-tiny", MULTI_CANCER)
    members = [
        ("vit", vit, vit_processor),
        ("convnext", convnext, convnext_processor),
        ("swin", swin, swin_processor),
    ]
    for _, model, _ in members:
        model.eval()
    return members


def save_members(members, root: Path) -> list[Path]:
    """Save each member as a training run would (model + processor); returns the folders."""
    folders = []
    for name, model, processor in members:
        folder = root / name
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        folders.append(folder)
    return folders


def classifier(model: nn.Module) -> nn.Linear:
    """The member's head (last Linear with one output per sub-class)."""
    heads = [
        m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == MULTI_CANCER.num_sub
    ]
    return heads[-1]


def bias_towards(members, label: str, strength: float) -> None:
    """Push every member towards `label` (a way to make untrained members predict a chosen class)."""
    index = MULTI_CANCER.sub_index(label)
    with torch.no_grad():
        for _, model, _ in members:
            classifier(model).bias[index] += strength


def tiny_timm_member() -> tuple[str, nn.Module, object]:
    """A timm ResNet through transformers' TimmWrapper (random init, 56 px, crop 0.9)."""
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification, TimmWrapperImageProcessor

    pretrained_cfg = {
        "input_size": [3, 56, 56],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "crop_pct": 0.9,
        "interpolation": "bicubic",
    }
    config = TimmWrapperConfig(
        architecture="resnet10t",
        pretrained_cfg=pretrained_cfg,
        id2label=MULTI_CANCER.id2label,
        label2id=MULTI_CANCER.label2id,
    )
    torch.manual_seed(0)
    model = TimmWrapperForImageClassification(config).eval()
    return (
        "timm-resnet",
        model,
        TimmWrapperImageProcessor(pretrained_cfg=pretrained_cfg, architecture="resnet10t"),
    )
