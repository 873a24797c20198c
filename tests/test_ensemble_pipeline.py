"""The `cancer-image-classification` pipeline: inputs, output fields, TTA rules, bad and odd images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from _ensemble_helpers import bias_towards, tiny_members
from PIL import Image
from transformers import pipeline

from cancernet_hf.data.images import open_image
from cancernet_hf.ensemble.pipeline_cancernet import CancerNetImageClassificationPipeline, load_rgb_image
from cancernet_hf.ensemble_build import assemble_ensemble, ensemble_image_processor, save_ensemble
from cancernet_hf.taxonomy import MULTI_CANCER

FIELDS = {"sub_class", "main_class", "members", "agreement", "entropy", "uncertain", "tta"}


def _picture(seed: int = 0, size: tuple[int, int] = (72, 60)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    ensemble = assemble_ensemble(
        tiny_members(),
        MULTI_CANCER,
        weights=[0.2, 0.3, 0.5],
        temperatures=[1.0, 1.5, 0.8],
        uncertainty_threshold=0.5,
    )
    return save_ensemble(ensemble, tmp_path_factory.mktemp("ensemble") / "ens")


@pytest.fixture(scope="module")
def pipe(folder):
    return pipeline(model=str(folder), trust_remote_code=True)  # no task: config.json names it


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "smear.png"
    _picture().save(path)
    return path


def _local_pipeline(label: str, strength: float = 2.0) -> CancerNetImageClassificationPipeline:
    members = tiny_members(seed=1)
    bias_towards(members, label, strength)
    ensemble = assemble_ensemble(members, MULTI_CANCER)
    return CancerNetImageClassificationPipeline(
        model=ensemble, image_processor=ensemble_image_processor(ensemble), device=-1
    )


def test_pipeline_without_task_returns_every_field(pipe, image_file):
    assert pipe.task == "cancer-image-classification"
    result = pipe(str(image_file), top_k=26)
    assert set(result) == FIELDS
    subs = result["sub_class"]
    assert [set(s) for s in subs[:1]] == [{"label", "name", "score"}]
    assert sorted(s["label"] for s in subs) == MULTI_CANCER.sub_names
    assert sum(s["score"] for s in subs) == pytest.approx(1.0, abs=1e-5)
    assert [s["score"] for s in subs] == sorted((s["score"] for s in subs), reverse=True)
    assert subs[0]["name"] == MULTI_CANCER.sub(subs[0]["label"]).human_name
    assert [m["member"] for m in result["members"]] == ["vit", "convnext", "swin"]
    assert [m["weight"] for m in result["members"]] == pytest.approx([0.2, 0.3, 0.5])
    votes = [m["label"] for m in result["members"]]
    assert result["agreement"] == pytest.approx(votes.count(subs[0]["label"]) / 3)
    p = np.array([s["score"] for s in subs])
    assert result["entropy"] == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-5)
    # Untrained members are nearly uniform: far below the 0.5 threshold set above.
    assert result["uncertain"] is True and result["tta"] is False


def test_main_class_scores_are_sums_of_their_sub_classes(pipe, image_file):
    result = pipe(str(image_file), top_k=26)
    sub = {s["label"]: s["score"] for s in result["sub_class"]}
    assert len(result["main_class"]) == len(MULTI_CANCER.main_names)
    for main in result["main_class"]:
        expected = sum(score for label, score in sub.items() if MULTI_CANCER.main_of(label) == main["label"])
        assert main["score"] == pytest.approx(expected, abs=1e-6)
    assert len(pipe(str(image_file))["sub_class"]) == 5  # default top_k
    assert len(pipe(str(image_file), top_k=3)["main_class"]) == 3


def test_stock_image_classification_pipeline_gives_the_ensemble_probabilities(folder, pipe, image_file):
    stock = pipeline("image-classification", model=str(folder), trust_remote_code=True)
    scores = stock(str(image_file), top_k=26)
    assert len(scores) == 26
    assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-5)
    ours = {s["label"]: s["score"] for s in pipe(str(image_file), top_k=26)["sub_class"]}
    for s in scores:
        assert s["score"] == pytest.approx(ours[s["label"]], abs=1e-6)


def test_every_input_kind_gives_the_same_answer_and_lists_are_batched(pipe, image_file):
    reference = _scores(pipe(str(image_file), top_k=26))
    data = image_file.read_bytes()
    kinds = [image_file, Image.open(image_file), np.asarray(Image.open(image_file)), data, io.BytesIO(data)]
    for kind in kinds:
        got = _scores(pipe(kind, top_k=26))
        assert got.keys() == reference.keys() and list(got.values()) == pytest.approx(
            list(reference.values())
        )
    batched = pipe([str(image_file), _picture(seed=3)], top_k=26, batch_size=2)
    assert isinstance(batched, list) and len(batched) == 2 and set(batched[1]) == FIELDS
    got = _scores(batched[0])
    assert [got[k] for k in reference] == pytest.approx(list(reference.values()), abs=1e-6)


def _scores(result: dict) -> dict[str, float]:
    return {s["label"]: s["score"] for s in result["sub_class"]}


def test_tta_is_skipped_for_mri_and_ct_predictions():
    pipe = _local_pipeline("brain_glioma")
    image = _picture(seed=4)
    plain, tta = pipe(image, top_k=26), pipe(image, top_k=26, tta=True)
    assert tta["sub_class"][0]["label"] == "brain_glioma"
    assert tta["tta"] is False and plain["tta"] is False
    assert tta["sub_class"] == plain["sub_class"]


def test_tta_averages_the_eight_dihedral_variants_for_microscopy():
    pipe = _local_pipeline("colon_aca")
    image = _picture(seed=5)
    result = pipe(image, top_k=26, tta=True)
    assert result["sub_class"][0]["label"] == "colon_aca" and result["tta"] is True
    pixels = pipe.image_processor(images=image, return_tensors="pt")["pixel_values"]
    variants = [torch.rot90(pixels, k, dims=(-2, -1)) for k in range(4)]
    variants += [v.flip(-1) for v in variants]
    with torch.no_grad():
        expected = torch.stack([pipe.model(pixel_values=v).logits.softmax(-1)[0] for v in variants]).mean(0)
    got = {s["label"]: s["score"] for s in result["sub_class"]}
    for index, label in MULTI_CANCER.id2label.items():
        assert got[label] == pytest.approx(float(expected[index]), abs=1e-6)
    plain = {s["label"]: s["score"] for s in pipe(image, top_k=26)["sub_class"]}
    assert max(abs(plain[k] - got[k]) for k in got) > 1e-6  # the variants really were different inputs


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's calling card)."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: b"\x00\x01garbage, not an image at all", "not an image format"),
        (
            lambda tmp: _write(tmp / "notes.jpg", b"patient notes: nothing to see here\n"),
            "not an image format",
        ),
        (lambda tmp: _png_declaring(20_000, 20_000), "decompression bomb"),
        (lambda tmp: _png_declaring(8_000, 8_000), "decompression bomb"),
        (lambda tmp: Image.new("RGB", (1, 1)), "smaller than 16 px"),
        (lambda tmp: b"", "empty"),
        (lambda tmp: _write(tmp / "empty.png", b""), "empty"),
        (lambda tmp: str(tmp / "missing.png"), "not an existing file"),
        (lambda tmp: _truncated_jpeg(tmp), "truncated or corrupt"),
        (lambda tmp: 42, "unsupported input type"),
        (lambda tmp: np.zeros((4, 4, 4, 4), dtype=np.uint8), "numpy array of shape"),
    ],
    ids=[
        "bytes",
        "text-file",
        "bomb-pil",
        "bomb-limit",
        "1x1",
        "no-bytes",
        "zero-file",
        "missing",
        "truncated",
        "int",
        "4d-array",
    ],
)
def test_bad_inputs_raise_a_clear_value_error(pipe, tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        pipe(make(tmp_path))


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _truncated_jpeg(tmp) -> str:
    buffer = io.BytesIO()
    _picture(size=(200, 200)).save(buffer, format="JPEG", quality=95)
    return _write(tmp / "cut.jpg", buffer.getvalue()[:1500])


# ---- mode conversion: the pipeline must see what training saw (cancernet_hf.data.images) ------------
def _mode_files(tmp):
    rng = np.random.default_rng(7)
    rgb = _picture(seed=7, size=(40, 30))
    rgba = rgb.convert("RGBA")
    alpha = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    alpha[:5] = 0
    rgba.putalpha(Image.fromarray(alpha))
    sixteen = Image.fromarray(rng.integers(100, 4096, (30, 40)).astype(np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    files = {
        "L": (rgb.convert("L"), "png", {}),
        "RGBA": (rgba, "png", {}),
        "LA": (rgba.convert("LA"), "png", {}),
        "P": (rgb.convert("P", palette=Image.Palette.ADAPTIVE), "png", {}),
        "P-transparent": (rgb.convert("P", palette=Image.Palette.ADAPTIVE), "png", {"transparency": 0}),
        "CMYK": (rgb.convert("CMYK"), "jpeg", {}),
        "I;16": (sixteen, "png", {}),
        "1": (rgb.convert("1"), "png", {}),
        "exif": (rgb, "jpeg", {"exif": exif}),
    }
    paths = {}
    for name, (image, fmt, options) in files.items():
        paths[name] = tmp / f"{name.replace(';', '_')}.{fmt}"
        image.save(paths[name], format=fmt.upper(), **options)
    return paths


def test_every_mode_converts_exactly_as_the_training_loader_does(tmp_path):
    for name, path in _mode_files(tmp_path).items():
        ours, training = load_rgb_image(path), open_image(path)
        assert ours.mode == "RGB", name
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(training), err_msg=name)


def test_conversions_keep_content(tmp_path):
    paths = _mode_files(tmp_path)
    rotated = load_rgb_image(paths["exif"])
    assert rotated.size == (30, 40)  # EXIF orientation applied: portrait now
    sixteen = np.asarray(load_rgb_image(paths["I;16"]))
    assert sixteen.min() == 0 and sixteen.max() == 255  # stretched, neither clipped white nor left dark
    assert (sixteen == 255).mean() < 0.01
    transparent = np.asarray(load_rgb_image(paths["RGBA"]))[:5]
    assert (transparent == 255).all()  # fully transparent rows become white glass
    array16 = np.random.default_rng(0).integers(0, 4096, (30, 40)).astype(np.uint16)
    assert np.asarray(load_rgb_image(array16)).max() == 255
    floats = np.full((30, 40, 3), 0.5, dtype=np.float32)
    assert np.asarray(load_rgb_image(floats)).mean() == pytest.approx(128, abs=1)
    chw = np.zeros((3, 30, 40), dtype=np.uint8)
    assert load_rgb_image(chw).size == (40, 30)


def test_odd_modes_run_through_the_pipeline(pipe, tmp_path):
    for name, path in _mode_files(tmp_path).items():
        result = pipe(str(path))
        assert set(result) == FIELDS, name
