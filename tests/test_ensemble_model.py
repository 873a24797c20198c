"""The ensemble model: config round-trip, the forward maths, save -> reload in a fresh process."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _ensemble_helpers import SIZES, tiny_members, tiny_timm_member
from PIL import Image
from transformers import AutoModelForImageClassification

from cancernet_hf.ensemble.configuration_cancernet import CancerNetEnsembleConfig
from cancernet_hf.ensemble.modeling_cancernet import CancerNetEnsembleForImageClassification
from cancernet_hf.ensemble_build import assemble_ensemble, ensemble_image_processor, save_ensemble
from cancernet_hf.errors import TaxonomyError
from cancernet_hf.taxonomy import MULTI_CANCER


@pytest.fixture(scope="module")
def members():
    return tiny_members()


@pytest.fixture(scope="module")
def ensemble(members):
    return assemble_ensemble(members, MULTI_CANCER, weights=[0.5, 0.3, 0.2], temperatures=[1.0, 2.0, 0.5])


def _pixels(seed: int = 0, size: int = 64, batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _member_probs_by_hand(members, pixels: torch.Tensor, temperatures) -> torch.Tensor:
    """Each member on its own input, prepared here step by step (crop, resize, normalise): (B, M, L)."""
    out = []
    for (_, model, processor), t in zip(members, temperatures):
        x = pixels
        if getattr(processor, "crop_pct", None):  # ConvNeXt at 48 px: keeps the central 87.5 %
            keep = round(pixels.shape[-1] * processor.crop_pct)
            start = (pixels.shape[-1] - keep) // 2
            x = x[..., start : start + keep, start : start + keep]
        side = SIZES[model.config.model_type]
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
        with torch.no_grad():
            logits = model(pixel_values=(x - mean) / std).logits
        out.append(torch.softmax(logits / t, dim=-1))
    return torch.stack(out, dim=1)


def test_config_stores_members_as_dicts_and_the_taxonomy(ensemble):
    config = ensemble.config
    assert [c["model_type"] for c in config.member_configs] == ["vit", "convnext", "swin"]
    assert all(isinstance(c, dict) for c in config.member_configs)
    assert config.member_image_sizes == [[32, 32], [48, 48], [64, 64]]
    assert config.member_crop_fractions == [1.0, 0.875, 1.0]
    assert config.image_size == [64, 64]  # the largest member
    assert config.num_labels == 26 and config.id2label[0] == MULTI_CANCER.sub_names[0]
    assert config.main_names == MULTI_CANCER.main_names and len(config.sub_to_main) == 26
    assert config.dihedral_mask[MULTI_CANCER.sub_index("brain_glioma")] is False
    assert config.human_names[MULTI_CANCER.sub_index("lung_scc")] == "Lung squamous cell carcinoma"
    assert sum(config.normalised_weights) == pytest.approx(1.0)
    again = CancerNetEnsembleConfig.from_dict(json.loads(config.to_json_string()))
    assert again.member_configs == json.loads(json.dumps(config.member_configs))
    assert again.label2id == config.label2id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"member_weights": [1.0]}, "member_weights has 1 entries for 2 members"),
        ({"member_weights": [1.0, -1.0]}, "must be >= 0"),
        ({"member_temperatures": [1.0, 0.0]}, "must be > 0"),
        ({"member_crop_fractions": [1.0, 1.5]}, "not in"),
        ({"sub_to_main": [0, 5]}, "main_names"),
        ({"member_configs": [{"a": 1}, {"model_type": "vit"}]}, "model_type"),
    ],
)
def test_config_refuses_inconsistent_values(change, message):
    values = {
        "member_configs": [{"model_type": "vit"}, {"model_type": "vit"}],
        "id2label": {0: "a", 1: "b"},
        "main_names": ["m"],
        "sub_to_main": [0, 0],
        **change,
    }
    with pytest.raises(ValueError, match=message):
        CancerNetEnsembleConfig(**values)


def test_forward_is_the_weighted_mean_of_tempered_member_probabilities(members, ensemble):
    pixels = _pixels()
    with torch.no_grad():
        out = ensemble(pixel_values=pixels, output_member_probs=True)
    expected_members = _member_probs_by_hand(members, pixels, [1.0, 2.0, 0.5])
    torch.testing.assert_close(out.member_probs, expected_members, atol=1e-5, rtol=1e-4)
    weights = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1)
    torch.testing.assert_close(out.logits.exp(), (expected_members * weights).sum(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(3))


def test_equal_weights_unit_temperatures_is_the_plain_mean_of_members_run_directly(members):
    plain = assemble_ensemble(members, MULTI_CANCER)
    # The ensemble's own processor at 64 px == Swin's processor at 64 px minus the normalisation:
    # Swin inside the ensemble must see exactly what it sees on its own.
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    pixels = ensemble_image_processor(plain)(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = plain(pixel_values=pixels, output_member_probs=True)
        _, swin, swin_processor = members[2]
        alone = swin(**swin_processor(images=image, return_tensors="pt")).logits.softmax(-1)
    torch.testing.assert_close(out.member_probs[:, 2], alone, atol=1e-5, rtol=1e-4)
    by_hand = _member_probs_by_hand(members, pixels, [1.0, 1.0, 1.0])
    torch.testing.assert_close(out.logits.exp(), by_hand.mean(1), atol=1e-5, rtol=1e-4)


def test_zero_weight_member_drops_out_and_labels_give_the_nll(members):
    two = assemble_ensemble(members, MULTI_CANCER, weights=[1.0, 0.0, 1.0])
    pixels = _pixels(seed=1)
    labels = torch.tensor([0, 5, 25])
    with torch.no_grad():
        out = two(pixel_values=pixels, labels=labels, output_member_probs=True)
    expected = out.member_probs[:, [0, 2]].mean(1)
    torch.testing.assert_close(out.logits.exp(), expected, atol=1e-6, rtol=1e-5)
    assert out.loss == pytest.approx(float(-expected[torch.arange(3), labels].log().mean()), rel=1e-5)
    assert two(pixel_values=pixels, return_dict=False)[0].shape == (3, 26)


def test_bad_pixel_values_and_foreign_members_are_refused(members, ensemble):
    with pytest.raises(ValueError, match="expects pixel_values of shape"):
        ensemble(pixel_values=torch.rand(1, 1, 64, 64))
    name, model, processor = members[0]
    other = copy.deepcopy(model)
    other.config.id2label = {0: "x", 1: "y"}
    with pytest.raises(TaxonomyError, match="not the 26 sub-classes"):
        assemble_ensemble([(name, other, processor)], MULTI_CANCER)


def test_any_input_size_is_resized_per_member(ensemble):
    with torch.no_grad():
        out = ensemble(pixel_values=_pixels(size=40, batch=2))
    assert out.logits.shape == (2, 26) and torch.isfinite(out.logits).all()


@pytest.mark.slow
def test_fresh_process_reloads_identical_logits_and_the_pipeline_without_task(ensemble, tmp_path):
    """Only transformers in the child: AutoModel gives the same logits, pipeline() finds its task itself."""
    folder = save_ensemble(ensemble, tmp_path / "ensemble")
    Image.new("RGB", (50, 40), (200, 120, 160)).save(tmp_path / "cell.png")
    pixels = _pixels(seed=2)
    with torch.no_grad():
        expected = ensemble(pixel_values=pixels).logits.numpy()
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np, torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        pixels = torch.from_numpy(np.load({str(tmp_path / "pixels.npy")!r}))
        with torch.no_grad():
            np.save({str(tmp_path / "logits.npy")!r}, model(pixel_values=pixels).logits.numpy())
        from transformers import pipeline
        pipe = pipeline(model={str(folder)!r}, trust_remote_code=True)
        result = pipe({str(tmp_path / "cell.png")!r})
        print(json.dumps({{"class": type(model).__name__, "task": pipe.task, "keys": sorted(result),
                          "cancernet_hf": "cancernet_hf" in sys.modules}}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "class": "CancerNetEnsembleForImageClassification",
        "task": "cancer-image-classification",
        "keys": ["agreement", "entropy", "main_class", "members", "sub_class", "tta", "uncertain"],
        "cancernet_hf": False,
    }
    np.testing.assert_array_equal(np.load(tmp_path / "logits.npy"), expected)


def test_from_pretrained_in_process_keeps_member_weights(ensemble, tmp_path):
    folder = save_ensemble(ensemble, tmp_path / "ensemble")
    again = CancerNetEnsembleForImageClassification.from_pretrained(folder).eval()
    pixels = _pixels(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=pixels).logits, ensemble(pixel_values=pixels).logits)
    files = sorted(p.name for p in folder.iterdir())
    for name in ("config.json", "model.safetensors", "modeling_cancernet.py", "configuration_cancernet.py"):
        assert name in files
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"].startswith("modeling_cancernet.")


def test_a_timm_member_mixes_in_and_survives_save_and_reload(members, tmp_path):
    mixed = assemble_ensemble([members[0], tiny_timm_member()], MULTI_CANCER)
    assert mixed.config.member_image_sizes[1] == [56, 56] and mixed.config.member_crop_fractions[1] == 0.9
    folder = save_ensemble(mixed, tmp_path / "mixed")
    again = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    pixels = _pixels(seed=4, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=pixels).logits, mixed(pixel_values=pixels).logits)
