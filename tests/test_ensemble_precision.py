"""The ensemble's precision fast path: bf16 members agree with fp32, fp32 stays the exact default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ensemble_helpers import bias_towards, tiny_members
from PIL import Image

from cancernet_hf.ensemble.pipeline_cancernet import (
    PRECISIONS,
    CancerNetImageClassificationPipeline,
    native_bf16_cpu,
)
from cancernet_hf.ensemble_build import assemble_ensemble, ensemble_image_processor
from cancernet_hf.taxonomy import MULTI_CANCER


def _pictures(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (60, 72, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def pipe():
    members = tiny_members(seed=2)
    bias_towards(members, "colon_aca", 1.0)  # a confident top-1, as a trained ensemble has
    ensemble = assemble_ensemble(members, MULTI_CANCER, weights=[0.2, 0.3, 0.5])
    return CancerNetImageClassificationPipeline(
        model=ensemble, image_processor=ensemble_image_processor(ensemble), device=-1
    )


def _probs(results: list[dict]) -> np.ndarray:
    label2id = MULTI_CANCER.label2id
    out = np.zeros((len(results), MULTI_CANCER.num_sub))
    for i, result in enumerate(results):
        for entry in result["sub_class"]:
            out[i, label2id[entry["label"]]] = entry["score"]
    return out


def test_default_is_fp32_and_equals_the_model(pipe):
    images = _pictures(3)
    default = _probs(pipe(images, top_k=26, batch_size=3))
    pixels = pipe.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = pipe.model(pixel_values=pixels).logits.softmax(-1).numpy()
    np.testing.assert_allclose(default, expected, atol=1e-6)
    assert pipe.resolve_precision() == "fp32"
    assert pipe.model.dtype == torch.float32  # the bf16 path below works on a copy


def test_bf16_agrees_with_fp32_within_the_bar(pipe):
    images = _pictures(6)
    fp32 = _probs(pipe(images, top_k=26, batch_size=3, precision="fp32"))
    bf16 = _probs(pipe(images, top_k=26, batch_size=3, precision="bf16"))
    assert np.abs(fp32 - bf16).max() <= 0.02
    assert (fp32.argmax(1) == bf16.argmax(1)).all()
    assert np.abs(fp32 - bf16).max() > 0  # really a different arithmetic
    assert (
        pipe.model.dtype == torch.float32
        and next(iter(pipe._precision_copies.values())).dtype == torch.bfloat16
    )


def test_tta_runs_in_bf16(pipe):
    result = pipe(_pictures(1)[0], top_k=3, tta=True, precision="bf16")
    assert result["tta"] is True and result["sub_class"][0]["label"] == "colon_aca"


def test_auto_follows_the_cpu_and_the_config(pipe, monkeypatch):
    assert pipe.resolve_precision("auto") == ("bf16" if native_bf16_cpu() else "fp32")
    monkeypatch.setattr(pipe.model.config, "inference_precision", "bf16", raising=False)
    assert pipe.resolve_precision() == "bf16"
    assert pipe.resolve_precision("fp32") == "fp32"  # the call's argument wins over the config


def test_unknown_precision_is_refused(pipe):
    with pytest.raises(ValueError, match="precision must be one of"):
        pipe(_pictures(1)[0], precision="fp8")
    assert set(PRECISIONS) == {"auto", "bf16", "fp32"}


def test_a_model_loaded_in_bf16_runs():
    """Antialiased resizing has no bf16 CPU kernel: member inputs are made in fp32, then cast."""
    ensemble = assemble_ensemble(tiny_members(seed=3), MULTI_CANCER).to(torch.bfloat16)
    out = ensemble(pixel_values=torch.rand(2, 3, 64, 64, dtype=torch.bfloat16))
    assert out.logits.shape == (2, MULTI_CANCER.num_sub) and torch.isfinite(out.logits).all()
