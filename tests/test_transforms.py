"""Transforms: processor geometry and normalisation, the per-class dihedral rule, H&E-only stain jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cancernet_hf.data.stain import hed_jitter, hed_to_rgb, rgb_to_hed
from cancernet_hf.data.transforms import (
    _decode,
    build_transforms,
    collate_fn,
    prepare_dataset,
    processor_geometry,
    random_dihedral,
)
from cancernet_hf.errors import TaxonomyError
from cancernet_hf.models.presets import PRESETS
from cancernet_hf.taxonomy import MULTI_CANCER as TAX

TINY = ["vit-tiny", "convnext-tiny", "swin-tiny"]
NO_AUGMENT = {
    "color_jitter": 0.0,
    "hue_jitter": 0.0,
    "stain_jitter": 0.0,
    "crop_scale": (1.0, 1.0),
    "crop_ratio": (1.0, 1.0),
}


def _asymmetric(side: int = 64) -> Image.Image:
    """An image that differs from each of its 7 other rotations/reflections."""
    rng = np.random.default_rng(0)
    array = rng.integers(60, 200, size=(side, side, 3), dtype=np.uint8)
    array[: side // 4, : side // 2] = (230, 40, 90)  # a block in the top-left, wider than tall
    return Image.fromarray(array)


def _dihedral_variants(pixels: torch.Tensor) -> list[torch.Tensor]:
    return [torch.rot90(p, k, dims=(-2, -1)) for p in (pixels, pixels.flip(-1)) for k in range(4)]


def _run(transform, image, label, seed):
    torch.manual_seed(seed)
    return transform({"image": [image], "label": [label]})["pixel_values"][0]


@pytest.mark.parametrize("name", TINY)
def test_geometry_and_eval_of_a_constant_image_gives_the_exact_normalised_value(name):
    processor = PRESETS[name].make_processor()
    geometry = processor_geometry(processor)
    assert (geometry.height, geometry.width) == (64, 64)
    assert list(geometry.mean) == list(processor.image_mean)
    assert list(geometry.std) == list(processor.image_std)
    rgb = (100, 150, 200)
    image = Image.new("RGB", (300, 200), rgb)  # not square, not the target size
    out = build_transforms(processor, TAX, train=False)({"image": [image], "label": [3]})
    pixels = out["pixel_values"][0]
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32
    expected = (torch.tensor(rgb) / 255 - torch.tensor(geometry.mean)) / torch.tensor(geometry.std)
    assert torch.allclose(pixels, expected.view(3, 1, 1).expand_as(pixels), atol=1e-5)
    assert out["labels"] == [3]


@pytest.mark.parametrize("name", TINY)
def test_eval_transform_equals_the_processor_and_train_has_the_processor_size(name):
    processor = PRESETS[name].make_processor()
    image = _asymmetric(97)
    pixels = build_transforms(processor, TAX, train=False)({"image": [image]})["pixel_values"][0]
    assert torch.equal(pixels, processor(images=[image], return_tensors="pt")["pixel_values"][0])
    for auto in ("trivialaugment", "randaugment"):
        train = build_transforms(processor, TAX, train=True, auto_augment=auto)
        for seed in range(12):  # every op of the augment policies gets a chance (bicubic-on-tensor trap)
            torch.manual_seed(seed)
            assert train({"image": [image], "label": [1]})["pixel_values"][0].shape == (3, 64, 64)
    batch = {"image": [image, image.convert("L")], "label": [0, 4], "main_label": [0, 1]}
    out = train(batch)
    assert [tuple(p.shape) for p in out["pixel_values"]] == [(3, 64, 64)] * 2
    assert out["labels"] == [0, 4] and out["main_label"] == [0, 1]
    stacked = collate_fn(
        [
            {"pixel_values": p, "labels": y, "main_label": 0}
            for p, y in zip(out["pixel_values"], out["labels"])
        ]
    )
    assert stacked["pixel_values"].shape == (2, 3, 64, 64) and stacked["labels"].tolist() == [0, 4]
    assert set(stacked) == {"pixel_values", "labels"}


def test_timm_processor_geometry():
    timm = pytest.importorskip("timm")
    from transformers import TimmWrapperImageProcessor

    cfg = dict(timm.create_model("test_vit", pretrained=False).pretrained_cfg)
    geometry = processor_geometry(TimmWrapperImageProcessor(pretrained_cfg=cfg))
    assert (geometry.height, geometry.width) == tuple(cfg["input_size"][1:])
    assert geometry.mean == tuple(cfg["mean"]) and geometry.std == tuple(cfg["std"])


def test_mri_and_ct_are_never_rotated_or_flipped_microscopy_is():
    processor = PRESETS["vit-tiny"].make_processor()
    image = _asymmetric()
    plain = build_transforms(processor, TAX, train=True, dihedral=False, **NO_AUGMENT)
    train = build_transforms(processor, TAX, train=True, **NO_AUGMENT)
    reference = _run(plain, image, 0, 0)
    variants = _dihedral_variants(reference)
    assert all(not torch.equal(variants[0], v) for v in variants[1:])  # the test image is asymmetric
    for sub in ("brain_glioma", "brain_menin", "brain_tumor", "kidney_normal", "kidney_tumor"):
        assert not TAX.sub(sub).dihedral
        for seed in range(25):
            assert torch.equal(_run(train, image, TAX.sub_index(sub), seed), reference), (sub, seed)
    for sub in ("all_pre", "cervix_koc", "lung_aca"):
        seen = set()
        for seed in range(40):
            out = _run(train, image, TAX.sub_index(sub), seed)
            matches = [i for i, v in enumerate(variants) if torch.equal(out, v)]
            assert len(matches) == 1, (sub, seed)  # always one of the 8 dihedral images
            seen.add(matches[0])
        assert len(seen) >= 5 and seen != {0}, sub


def test_stain_jitter_only_touches_he_histopathology():
    processor = PRESETS["convnext-tiny"].make_processor()
    image = Image.new("RGB", (64, 64), (190, 110, 170))  # pinkish-purple, like H&E
    options = {**NO_AUGMENT, "stain_jitter": 0.08}
    plain = build_transforms(processor, TAX, train=True, dihedral=False, **NO_AUGMENT)
    stain = build_transforms(processor, TAX, train=True, dihedral=False, **options)
    for sub in ("colon_aca", "lung_scc", "breast_benign", "lymph_fl", "oral_scc"):
        assert TAX.sub(sub).modality == "H&E histopathology"
        label = TAX.sub_index(sub)
        reference = _run(plain, image, label, 0)
        changed = [not torch.allclose(_run(stain, image, label, s), reference, atol=1e-3) for s in range(5)]
        assert all(changed), sub
    for sub in ("all_early", "cervix_sfi", "brain_glioma", "kidney_tumor"):
        label = TAX.sub_index(sub)
        reference = _run(plain, image, label, 0)
        assert all(torch.equal(_run(stain, image, label, s), reference) for s in range(5)), sub


def test_hed_round_trip_and_jitter_strength():
    torch.manual_seed(0)
    rgb = torch.rand(3, 16, 16) * 0.95 + 0.04
    assert torch.allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-5)
    assert torch.allclose(hed_jitter(rgb, scale=0.0, shift=0.0), rgb, atol=1e-5)
    # A pure-haematoxylin pixel has no eosin/DAB concentration.
    haem = hed_to_rgb(torch.tensor([0.8, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 4).clone())
    hed = rgb_to_hed(haem)
    assert torch.allclose(hed[0], torch.full((4, 4), 0.8), atol=1e-4)
    assert hed[1:].abs().max() < 1e-4
    jittered = hed_jitter(rgb, scale=0.05, shift=0.05, generator=torch.Generator().manual_seed(1))
    delta = (jittered - rgb).abs()
    assert 0 < delta.mean() < 0.1 and jittered.min() >= 0 and jittered.max() <= 1
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        hed_jitter(torch.rand(4, 8, 8))


def test_random_dihedral_covers_the_group_and_non_square_keeps_shape():
    pixels = torch.arange(2 * 4 * 4).view(2, 4, 4)
    variants = _dihedral_variants(pixels)
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        out = random_dihedral(pixels)
        seen.add(next(i for i, v in enumerate(variants) if torch.equal(out, v)))
    assert seen == set(range(8))
    assert random_dihedral(torch.zeros(3, 4, 6)).shape == (3, 4, 6)


def test_bad_options_and_labels_are_refused():
    processor = PRESETS["vit-tiny"].make_processor()
    with pytest.raises(ValueError, match="auto_augment"):
        build_transforms(processor, TAX, train=True, auto_augment="autoaugment")
    with pytest.raises(ValueError, match="crop_scale"):
        build_transforms(processor, TAX, train=True, crop_scale=(0.0, 1.0))
    train = build_transforms(processor, TAX, train=True, auto_augment="randaugment")
    assert train({"image": [_asymmetric()], "label": [1]})["pixel_values"][0].shape == (3, 64, 64)
    with pytest.raises(TaxonomyError, match="outside"):
        train({"image": [_asymmetric()], "label": [26]})


def test_prepare_dataset_decodes_jpegs_lazily_in_draft_mode(tmp_path):
    datasets = pytest.importorskip("datasets")
    paths = []
    for i, colour in enumerate([(200, 100, 150), (40, 40, 40)]):
        path = tmp_path / f"img_{i}.jpg"
        Image.new("RGB", (512, 512), colour).save(path, quality=95)
        paths.append(str(path))
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=TAX.sub_names)}
    )
    ds = datasets.Dataset.from_dict({"image": paths, "label": [0, 20]}, features=features)
    processor = PRESETS["vit-tiny"].make_processor()
    prepared = prepare_dataset(ds, processor, TAX, train=True)
    assert prepared.features["image"].decode is False and ds.features["image"].decode is True
    item = prepared[1]
    assert item["pixel_values"].shape == (3, 64, 64) and item["labels"] == 20
    assert _decode({"path": paths[0], "bytes": None}, 64).size == (64, 64)  # 1/8 DCT scale
    assert _decode({"path": paths[0], "bytes": None}, 100).size == (128, 128)
    lazy = Image.open(paths[0])
    assert _decode(lazy, 64).size == (64, 64)
    assert _decode(Image.open(paths[0]), None).size == (512, 512)
    eval_ds = prepare_dataset(ds, processor, TAX, train=False)
    expected = (torch.tensor([40, 40, 40]) / 255 - 0.5) / 0.5
    assert torch.allclose(eval_ds[1]["pixel_values"][:, 32, 32], expected, atol=0.02)


@pytest.mark.parametrize(
    ("name", "pinned"),
    [
        ("vit-tiny", [-0.9922, -0.6941, 0.3961, -0.5216]),
        ("convnext-tiny", [-1.7240, -1.1954, 0.9668, -0.9363]),
        ("swin-tiny", [-2.1008, -1.3529, 1.2980, -1.0733]),
    ],
)
def test_eval_preprocessing_is_pinned(name, pinned):
    """Pinned pixels of a fixed gradient image: catches resize/crop/normalisation drift across upgrades."""
    y, x = np.mgrid[0:83, 0:97]
    image = Image.fromarray(np.stack([x * 2, y * 3, x + y], -1).astype(np.uint8))
    out = build_transforms(PRESETS[name].make_processor(), TAX, train=False)({"image": [image]})
    pixels = out["pixel_values"][0]
    got = [float(pixels[c, i, j]) for c, i, j in [(0, 0, 0), (1, 10, 50), (2, 63, 63), (0, 32, 20)]]
    assert got == pytest.approx(pinned, abs=2e-3)
