"""build_member: presets, local folders (head replaced, backbone kept), timm wrapper, offline errors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageClassification, BaseImageProcessor

from cancernet_hf.data.transforms import processor_geometry
from cancernet_hf.errors import HubUnreachableError, UnknownModelError
from cancernet_hf.models.members import build_member, count_parameters, disable_dropout
from cancernet_hf.models.presets import PRESETS
from cancernet_hf.taxonomy import MULTI_CANCER, Taxonomy

TINY = ["vit-tiny", "convnext-tiny", "swin-tiny"]
SMALL = ["vit-small", "convnext-small", "swin-small"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_preset_builds_with_taxonomy_head_and_runs_at_its_size(name):
    model, processor = build_member(name)
    assert isinstance(processor, BaseImageProcessor)
    assert model.config.num_labels == 26
    assert model.config.id2label == MULTI_CANCER.id2label
    assert model.config.label2id == MULTI_CANCER.label2id
    assert 100_000 < count_parameters(model) < 1_000_000
    size = PRESETS[name].image_size
    assert 64 <= size <= 96
    pixels = torch.randn(2, 3, size, size)
    out = model(pixel_values=pixels, labels=torch.tensor([0, 25]))
    assert out.logits.shape == (2, 26)
    out.loss.backward()  # trainable end to end


def test_swin_tiny_trains_at_64_px_where_the_stock_window_fails():
    preset = PRESETS["swin-tiny"]
    model, _ = build_member("swin-tiny")
    assert preset.image_size == 64 and model.config.window_size < 7
    model.train()
    out = model(pixel_values=torch.randn(4, 3, 64, 64), labels=torch.tensor([1, 2, 3, 4]))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # Why the preset exists: the stock window 7 breaks at 64 px.
    stock = AutoModelForImageClassification.from_config(
        preset.make_config(window_size=7, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    )
    with pytest.raises(RuntimeError):
        stock(pixel_values=torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("name", SMALL)
def test_small_presets_are_real_size_configs(name):
    preset = PRESETS[name]
    with torch.device("meta"):
        model = AutoModelForImageClassification.from_config(preset.make_config(num_labels=26))
    assert preset.image_size == 224
    assert 15_000_000 < count_parameters(model) < 35_000_000
    assert preset.make_processor().to_dict()["image_mean"]


def test_config_overrides_and_custom_taxonomy():
    small = Taxonomy.from_dict(
        {
            "main_classes": ["A", "B"],
            "sub_classes": [
                {"name": "a1", "main": "A"},
                {"name": "b1", "main": "B"},
                {"name": "b2", "main": "B"},
            ],
        }
    )
    model, _ = build_member("swin-tiny", small, drop_path_rate=0.0)
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a1", 1: "b1", 2: "b2"}
    assert model.config.drop_path_rate == 0.0
    # Another input size moves the processor with the model.
    for name in ("vit-tiny", "convnext-tiny"):
        model, processor = build_member(name, image_size=96)
        assert processor_geometry(processor)[:2] == (96, 96)
        assert model(pixel_values=torch.randn(1, 3, 96, 96)).logits.shape == (1, 26)


def test_disable_dropout_makes_train_mode_deterministic():
    model, _ = build_member("swin-tiny", drop_path_rate=0.3, hidden_dropout_prob=0.1)
    model.train()
    x = torch.randn(16, 3, 64, 64)
    torch.manual_seed(0)
    a = model(pixel_values=x).logits
    torch.manual_seed(1)
    b = model(pixel_values=x).logits
    assert not torch.allclose(a, b)
    assert disable_dropout(model) > 0
    assert model.config.drop_path_rate == 0.0 and model.config.hidden_dropout_prob == 0.0
    torch.manual_seed(2)
    c = model(pixel_values=x).logits
    torch.manual_seed(3)
    assert torch.equal(c, model(pixel_values=x).logits)


def _save_preset(name, folder, **config):
    """A checkpoint folder as a Hub repo would hold it (config, safetensors, preprocessor_config.json)."""
    preset = PRESETS[name]
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(preset.make_config(**config))
    model.save_pretrained(folder)
    preset.make_processor().save_pretrained(folder)
    return model


@pytest.mark.parametrize("name", ["convnext-tiny", "vit-tiny"])
def test_local_checkpoint_gets_a_new_head_and_keeps_its_backbone(tmp_path, name):
    source = _save_preset(name, tmp_path, num_labels=1000)
    assert json.loads((tmp_path / "config.json").read_text())["id2label"]["999"] == "LABEL_999"
    model, processor = build_member(tmp_path)
    assert model.config.num_labels == 26 and model.config.id2label[25] == "oral_scc"
    head = model.classifier
    assert head.out_features == 26
    kept = {k: v for k, v in source.state_dict().items() if not k.startswith("classifier")}
    loaded = model.state_dict()
    assert kept and all(torch.equal(v, loaded[k]) for k, v in kept.items())
    assert type(processor).__name__ == PRESETS[name].processor_class
    assert processor.to_dict()["image_mean"] == PRESETS[name].make_processor().to_dict()["image_mean"]


def test_local_checkpoint_with_the_taxonomy_keeps_its_head_and_reorders_permuted_labels(tmp_path):
    names = MULTI_CANCER.sub_names
    same = _save_preset("vit-tiny", tmp_path / "same", id2label=MULTI_CANCER.id2label)
    model, _ = build_member(tmp_path / "same")
    x = torch.randn(3, 3, 64, 64)
    same.eval(), model.eval()
    with torch.no_grad():
        expected = same(pixel_values=x).logits
        assert torch.equal(model(pixel_values=x).logits, expected)
    # The same head stored with its labels in reverse order: rows are put back in taxonomy order.
    reversed_labels = dict(enumerate(reversed(names)))
    permuted = _save_preset("vit-tiny", tmp_path / "perm", id2label=reversed_labels)
    model, _ = build_member(tmp_path / "perm")
    permuted.eval(), model.eval()
    with torch.no_grad():
        stored = permuted(pixel_values=x).logits  # column j is reversed_labels[j]
        got = model(pixel_values=x).logits
    for j, name in enumerate(names):
        assert torch.allclose(got[:, j], stored[:, len(names) - 1 - j], atol=1e-6), name


def test_timm_wrapper_checkpoint_saved_offline_reloads_with_new_head(tmp_path):
    timm = pytest.importorskip("timm")
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    # timm test architecture, random init (no download); pretrained_cfg makes the folder reloadable.
    pretrained_cfg = dict(timm.create_model("test_vit", pretrained=False).pretrained_cfg)
    source = TimmWrapperForImageClassification(
        TimmWrapperConfig(architecture="test_vit", num_labels=1000, pretrained_cfg=pretrained_cfg)
    )
    source.save_pretrained(tmp_path / "timm")
    model, processor = build_member(tmp_path / "timm")
    assert type(model).__name__ == "TimmWrapperForImageClassification"
    assert type(processor).__name__ == "TimmWrapperImageProcessor"
    assert model.config.num_labels == 26 and model.config.id2label[3] == "all_pro"
    assert torch.equal(model.timm_model.cls_token, source.timm_model.cls_token)
    side = pretrained_cfg["input_size"][-1]
    assert model(pixel_values=torch.randn(1, 3, side, side)).logits.shape == (1, 26)
    # A trained member round-trips with its labels.
    model.save_pretrained(tmp_path / "member")
    again, _ = build_member(tmp_path / "member")
    assert again.config.id2label[3] == "all_pro"
    assert torch.equal(again.timm_model.head.weight, model.timm_model.head.weight)


def test_timm_folder_without_pretrained_cfg_is_refused_with_the_fix(tmp_path):
    pytest.importorskip("timm")
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    TimmWrapperForImageClassification(
        TimmWrapperConfig(architecture="test_vit", num_labels=10)
    ).save_pretrained(tmp_path)
    with pytest.raises(UnknownModelError, match="pretrained_cfg"):
        build_member(tmp_path)


def test_offline_hub_id_says_hub_unreachable_and_how_to_work_offline(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnreachableError) as info:
        build_member("google/vit-base-patch16-224-in21k", cache_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "unreachable" in message and "google/vit-base-patch16-224-in21k" in message
    assert "local folder" in message and "vit-tiny" in message and "swin-small" in message


def test_unknown_names_suggest_the_nearest_preset(tmp_path):
    with pytest.raises(UnknownModelError, match="Did you mean 'vit-tiny'") as info:
        build_member("vit-tinny")
    assert isinstance(info.value, KeyError)
    assert "convnext-tiny" in str(info.value)
    with pytest.raises(UnknownModelError, match="no such folder"):
        build_member(str(tmp_path / "missing" / "member"))
    with pytest.raises(UnknownModelError, match="no config.json"):
        build_member(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UnknownModelError, match="not a folder"):
        build_member(tmp_path / "weights.bin")


_HUB_CLIENT = r"""
import json, sys
import huggingface_hub.constants as hub_constants
import torch
from cancernet_hf.errors import UnknownModelError
from cancernet_hf.models.members import build_member

result = {}
for arg in sys.argv[1:]:
    repo, first = arg.split("::")
    model, processor = build_member(repo)
    result[repo] = {
        "model": type(model).__name__, "processor": type(processor).__name__,
        "num_labels": model.config.num_labels, "label_3": model.config.id2label[3],
        "sum": float(model.state_dict()[first].double().sum()),
    }
try:
    build_member("nobody/does-not-exist")
except UnknownModelError as e:
    result["missing"] = str(e)
hub_constants.HF_HUB_OFFLINE = True  # now only the cache can answer
model, _ = build_member(sys.argv[1].split("::")[0])
result["offline_from_cache"] = model.config.num_labels
print("RESULT" + json.dumps(result))
"""


@pytest.mark.slow
def test_hub_ids_download_from_a_local_hub_and_then_load_from_the_cache(tmp_path):
    """The real Hub path (transformers and timm-format repos) against a local Hub HTTP server."""
    import os
    import subprocess
    import sys

    timm = pytest.importorskip("timm")
    from hub_server import HubServer
    from timm.models import save_for_hf

    convnext = _save_preset("convnext-tiny", tmp_path / "convnext", num_labels=1000)
    vit = timm.create_model("test_vit", pretrained=False)
    save_for_hf(vit, tmp_path / "timm", safe_serialization=True)  # the layout of timm/... Hub repos
    # repo -> (a backbone weight's name in the member, its sum in the uploaded checkpoint)
    expected = {
        "org/convnext-test": (
            "convnext.embeddings.patch_embeddings.weight",
            float(convnext.state_dict()["convnext.embeddings.patch_embeddings.weight"].double().sum()),
        ),
        "timm/test_vit.tiny": (
            "timm_model.patch_embed.proj.weight",
            float(vit.state_dict()["patch_embed.proj.weight"].double().sum()),
        ),
    }
    with HubServer(tmp_path / "hub") as hub:
        for repo_id, folder in (("org/convnext-test", "convnext"), ("timm/test_vit.tiny", "timm")):
            repo = hub.store.create("model", repo_id, private=False, sdk=None, variables=[])
            files = {p.name: p.read_bytes() for p in (tmp_path / folder).iterdir()}
            hub.store.commit(repo, "upload", files, [])
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        env.pop("HF_TOKEN", None)
        proc = subprocess.run(
            [sys.executable, "-c", _HUB_CLIENT, *(f"{repo}::{name}" for repo, (name, _) in expected.items())],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    conv, tm = result["org/convnext-test"], result["timm/test_vit.tiny"]
    assert (conv["model"], conv["processor"]) == ("ConvNextForImageClassification", "ConvNextImageProcessor")
    assert (tm["model"], tm["processor"]) == (
        "TimmWrapperForImageClassification",
        "TimmWrapperImageProcessor",
    )
    for repo_id, info in result.items():
        if repo_id in expected:
            assert info["num_labels"] == 26 and info["label_3"] == "all_pro"
            assert info["sum"] == pytest.approx(expected[repo_id][1], rel=1e-9), repo_id  # backbone kept
    assert "does not exist" in result["missing"]
    assert result["offline_from_cache"] == 26
