"""predict_logits: shape, dtype, label order, determinism, and agreement with the processor + model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cancernet_hf.models.inference import predict_logits
from cancernet_hf.models.members import build_member
from cancernet_hf.taxonomy import MULTI_CANCER as TAX

datasets = pytest.importorskip("datasets")


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(80 + i, 72, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def member():
    torch.manual_seed(0)
    return build_member("convnext-tiny")


def test_predict_logits_shape_labels_determinism_and_agreement(member):
    model, processor = member
    images = _images(10)
    labels = [3, 0, 25, 7, 7, 12, 1, 2, 18, 4]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=TAX.sub_names)}
    )
    ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    model.train()
    logits, got = predict_logits(model, processor, ds, batch_size=4, progress=False)
    assert model.training  # mode restored
    assert logits.shape == (10, 26) and logits.dtype == np.float32
    assert got.dtype == np.int64 and got.tolist() == labels
    again, _ = predict_logits(model, processor, ds, batch_size=3, progress=False)
    np.testing.assert_allclose(again, logits, rtol=0, atol=1e-5)  # batch size does not matter (eval mode)
    model.eval()
    with torch.no_grad():
        direct = model(
            **processor(images=[im.convert("RGB") for im in ds["image"]], return_tensors="pt")
        ).logits
    # datasets stores the images as lossless PNG: same pixels, so the same logits as a direct call.
    np.testing.assert_allclose(logits, direct.numpy(), rtol=0, atol=1e-4)


def test_predict_logits_without_labels_and_empty(member):
    model, processor = member
    ds = datasets.Dataset.from_dict(
        {"image": _images(3)}, features=datasets.Features({"image": datasets.Image()})
    )
    logits, labels = predict_logits(model, processor, ds, batch_size=64, progress=False)
    assert logits.shape == (3, 26) and labels.tolist() == [-1, -1, -1]
    empty = ds.select([])
    logits, labels = predict_logits(model, processor, empty, progress=False)
    assert logits.shape == (0, 26) and labels.shape == (0,)
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(model, processor, ds, batch_size=0)
