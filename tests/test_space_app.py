"""The Space (spaces/cancernet/): intake checks, heatmap, page wiring, gradio_client API, CLI, metadata."""

from __future__ import annotations

import ast
import csv
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _space_helpers as helpers
import gradio
import httpx
import numpy as np
import pytest
from _space_helpers import (
    bomb_png,
    fake_result,
    free_port,
    gray16_png,
    oversized_file,
    rgb_png,
    served,
    text_file,
)
from gradio_client import Client, handle_file
from gradio_client.exceptions import ValidationError
from PIL import Image

from cancernet_hf.cli import main as cli_main
from cancernet_hf.cli.app import space_app_path
from cancernet_hf.taxonomy import MULTI_CANCER

SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces" / "cancernet"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Fixtures shared with the browser test (assigned, so pytest finds them and linters see no shadowing).
space = helpers.space
tiny_ensemble = helpers.tiny_ensemble
tiny_pipeline = helpers.tiny_pipeline
real_app = helpers.real_app


def client(url: str) -> Client:
    return Client(url, download_files=False, verbose=False)


# ---- intake ------------------------------------------------------------------------------------------
def test_read_image_refuses_what_is_not_a_usable_image(space, tmp_path):
    from inputs import RejectedImage, read_image

    cases = {
        "notes.png": text_file(tmp_path / "notes.png"),
        "huge.png": bomb_png(tmp_path / "huge.png"),  # 400 Mpx: Pillow's own bomb error
        "big.png": bomb_png(tmp_path / "big.png", 7000, 7000),  # 49 Mpx: only our 40 Mpx limit
        "tiny.png": rgb_png(tmp_path / "tiny.png", size=8),
        "heavy.png": oversized_file(tmp_path / "heavy.png"),
    }
    (tmp_path / "empty.png").write_bytes(b"")
    cases["empty.png"] = tmp_path / "empty.png"
    expected = {
        "notes.png": "not an image",
        "huge.png": "decompression bomb",
        "big.png": "megapixel",
        "tiny.png": "smaller than 16 px",
        "heavy.png": "over the 10.0 MB limit",
        "empty.png": "empty",
    }
    for name, path in cases.items():
        result = read_image(path)
        assert isinstance(result, RejectedImage), name
        assert expected[name] in result.message and name in result.message


def test_read_image_normalises_16_bit_and_alpha_without_clipping(space, tmp_path):
    from inputs import read_image

    img = read_image(gray16_png(tmp_path / "ramp16.png"))
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.min() == 0 and arr.max() == 255
    assert len(np.unique(arr[..., 0])) > 200  # the ramp survives (Gradio's RGB mode makes it all 255)

    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255  # top half opaque red, bottom half transparent -> white background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    arr = np.asarray(read_image(tmp_path / "alpha.png"))
    assert tuple(arr[0, 0]) == (200, 0, 0) and tuple(arr[-1, -1]) == (255, 255, 255)


def test_space_converts_odd_modes_exactly_like_training(space):
    """The Space cannot import cancernet_hf, so its copy of the mode rules is pinned to the library's."""
    from inputs import to_rgb as space_to_rgb

    from cancernet_hf.data.images import to_rgb as library_to_rgb

    ramp = np.linspace(1000, 40000, 32 * 32).reshape(32, 32).astype(np.uint16)
    floats = np.linspace(-1, 3, 32 * 32).reshape(32, 32).astype(np.float32)
    floats[0, :4] = np.nan
    cases = {
        "16-bit ramp": Image.fromarray(ramp),
        "16-bit constant": Image.fromarray(np.full((32, 32), 100, dtype=np.uint16)),
        "float with NaN": Image.fromarray(floats, "F"),
        "32-bit int": Image.fromarray(ramp.astype(np.int32) - 20000),
        "palette": Image.fromarray(ramp.astype(np.uint8)).convert("P"),
        "CMYK": Image.new("CMYK", (32, 32), (10, 200, 30, 40)),
    }
    for name, img in cases.items():
        assert np.array_equal(np.asarray(space_to_rgb(img)), np.asarray(library_to_rgb(img))), name


# ---- heatmap -----------------------------------------------------------------------------------------
def test_occlusion_map_finds_the_region_the_score_depends_on(space):
    from explain import occlusion_map, overlay

    def score_fn(images):  # class 0's score is the brightness of the top-right corner
        out = []
        for im in images:
            a = np.asarray(im, dtype=np.float64) / 255.0
            h, w = a.shape[:2]
            p = a[: h // 4, 3 * w // 4 :].mean()
            out.append([p, 1 - p])
        return np.array(out)

    image = Image.new("RGB", (96, 96), (40, 40, 40))
    image.paste((255, 255, 255), (72, 0, 96, 24))  # bright top-right corner
    drops, target, reference = occlusion_map(image, score_fn, target=0, grid=4)
    assert target == 0 and reference > 0.9
    assert np.unravel_index(np.argmax(drops), drops.shape) == (0, 3)
    assert drops[3, 0] == pytest.approx(0.0, abs=1e-9)
    shown = overlay(image, drops, side=48)
    assert shown.size == (48, 48) and shown.mode == "RGB"
    assert overlay(Image.new("RGB", (40, 20)), drops, side=200).size == (200, 100)


def test_output_dir_writes_atomically_and_prunes_old_files(space, tmp_path):
    from explain import OutputDir

    out = OutputDir(tmp_path / "out", max_age_s=60)
    path = out.write_png(Image.new("RGB", (20, 20)))
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert not list(out.root.glob(".partial-*"))
    old = time.time() - 120
    os.utime(path, (old, old))
    fresh = out.write(b"a,b\n", ".csv")
    assert not path.exists() and fresh.exists()


# ---- page wiring with a fake model ---------------------------------------------------------------------
def test_format_result_human_names_members_and_banner(space):
    result = fake_result(Image.new("RGB", (32, 32), (3, 3, 3)))
    main, sub, members, status = space.format_result(result)
    assert next(iter(sub)) == MULTI_CANCER.sub_classes[3].human_name  # brightness 3 -> sub-class 3
    assert list(main)[0] == MULTI_CANCER.sub_classes[3].main
    assert members == [["vit", MULTI_CANCER.sub_names[3], 0.7, 0.6], ["convnext", members[1][1], 0.4, 0.4]]
    assert "Agreement:** 50%" in status and "1/2 members" in status and "Uncertain" not in status
    assert "Uncertain / not a recognised image type" in space.status_markdown({**result, "uncertain": True})
    assert "not applied" in space.status_markdown({**result, "tta": False}, tta_requested=True)


def test_batch_csv_defuses_spreadsheet_formulas(space, tmp_path):
    from explain import OutputDir

    row = space._batch_row("=HYPERLINK(1).png", None, "not an image")
    with open(space.write_csv([row], OutputDir(tmp_path)), newline="", encoding="utf-8") as f:
        written = list(csv.reader(f))
    assert written[1][0] == "'=HYPERLINK(1).png" and written[1][-1] == "not an image"


def test_fake_model_app_answers_validates_and_batches(space, tmp_path):
    demo = space.build_demo(fake_result, examples=[])
    good = rgb_png(tmp_path / "good.png")
    with served(space, demo) as url:
        c = client(url)
        main, sub, members, status, heatmap = c.predict(handle_file(good), True, api_name="/predict")
        assert main["label"] in MULTI_CANCER.main_names and heatmap is None
        assert "augmentation applied" in status  # the TTA checkbox reaches predict_fn
        with pytest.raises(ValidationError, match="notes.txt is not an image"):
            c.predict(handle_file(text_file(tmp_path / "notes.txt")), False, api_name="/predict")
        with pytest.raises(ValidationError, match="at least one image"):
            c.predict([], False, api_name="/predict_batch")
        # Hardening: only the two named endpoints, no open monitoring page, uploads over 10 MB refused (413).
        assert set(httpx.get(url + "gradio_api/info").json()["named_endpoints"]) == {
            "/predict",
            "/predict_batch",
        }
        assert httpx.get(url + "monitoring").status_code in (403, 404)
        with open(oversized_file(tmp_path / "heavy.png"), "rb") as f:
            response = httpx.post(url + "gradio_api/upload", files={"files": ("heavy.png", f, "image/png")})
        assert response.status_code == 413


# ---- the real (tiny) ensemble through gradio_client ----------------------------------------------------
def test_prediction_returns_labels_members_status_and_heatmap(space, real_app, tiny_pipeline, tmp_path):
    path = rgb_png(tmp_path / "tile.png", seed=1)
    main, sub, members, status, heatmap = client(real_app).predict(
        handle_file(path), False, api_name="/predict"
    )
    direct = tiny_pipeline(Image.open(path).convert("RGB"), top_k=5)
    assert main["label"] == direct["main_class"][0]["label"] and main["label"] in MULTI_CANCER.main_names
    assert main["confidences"][0]["confidence"] == pytest.approx(direct["main_class"][0]["score"], abs=1e-6)
    assert sub["label"] == direct["sub_class"][0]["name"]  # human-readable, not the folder name
    assert len(sub["confidences"]) == 5
    assert members["headers"] == space.MEMBER_HEADERS
    assert [row[0] for row in members["data"]] == ["vit-tiny", "convnext-tiny"]
    assert sum(row[3] for row in members["data"]) == pytest.approx(1.0, abs=1e-3)
    assert "Uncertain / not a recognised image type" in status  # untrained + threshold 0.5
    # The heatmap scores the same probabilities the answer shows (same processor, same model).
    probs = space.make_score_fn(tiny_pipeline)([Image.open(path).convert("RGB")])[0]
    top = direct["sub_class"][0]["label"]
    assert probs[tiny_pipeline.model.config.label2id[top]] == pytest.approx(
        direct["sub_class"][0]["score"], abs=1e-5
    )
    heatmap_path = Path(heatmap["path"])
    assert heatmap_path.suffix == ".png" and heatmap_path.read_bytes().startswith(PNG_MAGIC)
    with Image.open(heatmap_path) as shown:
        assert shown.size == (384, 384)  # the display size, whatever the upload's


def test_16_bit_upload_is_classified_not_refused(real_app, tmp_path):
    main, *_ = client(real_app).predict(
        handle_file(gray16_png(tmp_path / "mri16.png")), True, api_name="/predict"
    )
    assert main["label"] in MULTI_CANCER.main_names


def test_text_bomb_and_oversized_uploads_get_friendly_errors(real_app, tmp_path):
    c = client(real_app)
    with pytest.raises(ValidationError, match="notes.txt is not an image this app can read"):
        c.predict(handle_file(text_file(tmp_path / "notes.txt")), False, api_name="/predict")
    with pytest.raises(ValidationError, match="decompression bomb"):
        c.predict(handle_file(bomb_png(tmp_path / "bomb.png")), False, api_name="/predict")
    with pytest.raises(ValidationError, match="megapixel limit"):
        c.predict(handle_file(bomb_png(tmp_path / "big.png", 7000, 7000)), False, api_name="/predict")
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks max_file_size
        c.predict(handle_file(oversized_file(tmp_path / "heavy.png")), False, api_name="/predict")


def test_forty_requests_at_four_way_concurrency_all_succeed(real_app, tmp_path):
    paths = [rgb_png(tmp_path / f"img{i}.png", seed=i) for i in range(4)]

    def worker(k: int) -> list[str]:
        c = client(real_app)
        labels = []
        for i in range(10):
            main, _, _, _, heatmap = c.predict(
                handle_file(paths[(k + i) % 4]), i % 2 == 0, api_name="/predict"
            )
            assert Path(heatmap["path"]).read_bytes().startswith(PNG_MAGIC)
            labels.append(main["label"])
        return labels

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    labels = [label for chunk in results for label in chunk]
    assert len(labels) == 40 and set(labels) <= set(MULTI_CANCER.main_names)


def test_batch_tab_returns_table_and_csv_with_per_file_errors(real_app, tiny_pipeline, tmp_path):
    files = [rgb_png(tmp_path / "a.png", seed=2), rgb_png(tmp_path / "b.png", seed=3)]
    files.append(text_file(tmp_path / "notes.png"))  # passes the type filter, fails decoding
    table, csv_file = client(real_app).predict(
        [handle_file(f) for f in files], False, api_name="/predict_batch"
    )
    rows = {row[0]: row for row in table["data"]}
    assert set(rows) == {"a.png", "b.png", "notes.png"}
    for name in ("a.png", "b.png"):
        direct = tiny_pipeline(Image.open(tmp_path / name).convert("RGB"))
        assert (
            rows[name][1] == direct["main_class"][0]["label"]
            and rows[name][3] == direct["sub_class"][0]["label"]
        )
        assert rows[name][8] == ""
    assert "not an image" in rows["notes.png"][8] and rows["notes.png"][1] == ""
    with open(csv_file["path"], newline="", encoding="utf-8") as f:
        written = list(csv.reader(f))
    assert written[0] == table["headers"] and len(written) == 4


# ---- CLI -------------------------------------------------------------------------------------------------
def test_cli_finds_the_space_app_and_refuses_missing_models(capsys, tmp_path, monkeypatch):
    assert space_app_path() == SPACE_DIR / "app.py"
    assert cli_main(["app", "--model", str(tmp_path / "no" / "such" / "ensemble")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.delenv("CANCERNET_MODEL", raising=False)
    assert cli_main(["app"]) == 2
    assert "no model given" in capsys.readouterr().err


@pytest.mark.slow
def test_cancernet_app_serves_the_ensemble(tiny_ensemble, tmp_path):
    port = free_port()
    code = "import sys; from cancernet_hf.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "app", "--model", str(tiny_ensemble), "--port", str(port)]
    env = {**os.environ, "CANCERNET_OCCLUSION_GRID": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while True:
            try:
                c = client(url)
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"`cancernet app` did not start: {proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.5)
        main, *_ = c.predict(handle_file(rgb_png(tmp_path / "x.png")), False, api_name="/predict")
        assert main["label"] in MULTI_CANCER.main_names
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---- Space metadata ------------------------------------------------------------------------------------
def test_space_readme_metadata_parses_as_space_yaml(space):
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(SPACE_DIR / "README.md")
    data = card.data.to_dict()
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file",
                "short_description", "models", "license"):  # fmt: skip
        assert data.get(key), key
    assert data["sdk"] == "gradio" and data["sdk_version"] == gradio.__version__
    assert (SPACE_DIR / data["app_file"]).is_file()
    assert len(data["short_description"]) <= 60
    assert {data["colorFrom"], data["colorTo"]} <= {
        "red",
        "yellow",
        "green",
        "blue",
        "indigo",
        "purple",
        "pink",
        "gray",
    }
    assert data["models"][0] == space.readme_model()
    assert "Research use only: not a medical device." in card.text
    assert "Research use only: not a medical device." in space.DISCLAIMER
    examples = sorted((SPACE_DIR / "examples").glob("*.jpg"))
    assert len(examples) >= 4 and all(p.stat().st_size < 10_000 for p in examples)


def _imported_top_level_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_requirements_list_every_third_party_import_and_never_the_library():
    from packaging.requirements import Requirement

    local = {p.stem for p in SPACE_DIR.glob("*.py")}
    imported = set()
    for path in SPACE_DIR.glob("*.py"):
        imported |= _imported_top_level_modules(path)
    third_party = imported - set(sys.stdlib_module_names) - local - {"__future__"}
    assert "cancernet_hf" not in third_party  # the Space depends on the Hub model only
    distribution = {"PIL": "pillow"}
    lines = (SPACE_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    required = {
        Requirement(line).name.lower().replace("-", "_")
        for line in lines
        if line.strip() and not line.startswith("#")
    }
    missing = {distribution.get(m, m).lower() for m in third_party} - required
    assert not missing, f"requirements.txt lacks {missing}"
    gradio_pin = next(line for line in lines if line.startswith("gradio"))
    assert Requirement(gradio_pin).specifier.contains(gradio.__version__)
