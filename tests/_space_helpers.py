"""Fixtures for the Space tests: the app module, a tiny real ensemble, a served app, awkward files.

Imported by tests/test_space_app.py and tests/test_space_browser.py (pytest finds fixtures imported
into a test module).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cancernet_hf.cli.app import load_space_app
from cancernet_hf.constants import DEMO_DATA_NOTICE, ENSEMBLE_META_FILE
from cancernet_hf.taxonomy import MULTI_CANCER

OCCLUSION_GRID = 4  # 16 occluded copies per request keeps the concurrency test quick


# ---- files --------------------------------------------------------------------------------------------
def rgb_png(path: Path, seed: int = 0, size: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def gray16_png(path: Path, lo: int = 1000, hi: int = 5000, size: int = 64) -> Path:
    """A 16-bit ramp well above 255: an 8-bit RGB conversion would clip it to white."""
    ramp = np.linspace(lo, hi, size * size).reshape(size, size).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    return path


def text_file(path: Path) -> Path:
    path.write_text("patient notes, not an image\n", encoding="utf-8")
    return path


def bomb_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A small valid PNG whose header declares width x height pixels (CRC fixed, so Pillow trusts it)."""
    buffer = Path(path)
    Image.new("L", (16, 16)).save(buffer, format="PNG")
    data = bytearray(buffer.read_bytes())
    ihdr = bytearray(data[16:29])  # after signature(8) + length(4) + b"IHDR"(4)
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    buffer.write_bytes(bytes(data))
    return buffer


def oversized_file(path: Path, size: int = 11 * 1024 * 1024) -> Path:
    """A valid PNG padded with trailing bytes past the 10 MB upload limit."""
    rgb_png(path)
    with open(path, "ab") as f:
        f.write(b"\0" * (size - path.stat().st_size))
    return path


# ---- the app --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def space() -> ModuleType:
    return load_space_app()


def fake_result(image: Image.Image, tta: bool = False) -> dict[str, Any]:
    """A pipeline-shaped result that depends on the image (brightness picks the class), for UI tests."""
    subs = MULTI_CANCER.sub_classes
    top = int(np.asarray(image.convert("L")).mean()) % len(subs)
    order = [top, *[i for i in range(len(subs)) if i != top]][:5]
    scores = [0.6, 0.2, 0.1, 0.06, 0.04]
    main = MULTI_CANCER.main_names
    main_scores: dict[str, float] = {}
    for i, score in zip(order, scores):
        main_scores[subs[i].main] = main_scores.get(subs[i].main, 0.0) + score
    return {
        "sub_class": [
            {"label": subs[i].name, "name": subs[i].human_name, "score": s} for i, s in zip(order, scores)
        ],
        "main_class": [
            {"label": m, "score": main_scores.get(m, 0.0)}
            for m in sorted(main, key=lambda m: -main_scores.get(m, 0.0))
        ],
        "members": [
            {"member": "vit", "label": subs[top].name, "score": 0.7, "weight": 0.6},
            {"member": "convnext", "label": subs[order[1]].name, "score": 0.4, "weight": 0.4},
        ],
        "agreement": 0.5,
        "entropy": 1.2,
        "uncertain": False,
        "tta": bool(tta),
    }


@pytest.fixture(scope="session")
def tiny_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained ViT + ConvNeXt ensemble saved with its pipeline, as `cancernet ensemble` writes it.

    Untrained members give near-uniform probabilities; the 0.5 uncertainty threshold makes every
    prediction "uncertain", which the banner tests rely on.
    """
    import torch

    from cancernet_hf.ensemble_build import assemble_ensemble, save_ensemble
    from cancernet_hf.models.members import build_member

    torch.manual_seed(0)
    members = []
    for name in ("vit-tiny", "convnext-tiny"):
        model, processor = build_member(name)
        members.append((name, model.eval(), processor))
    ensemble = assemble_ensemble(members, uncertainty_threshold=0.5, image_size=48)
    out = tmp_path_factory.mktemp("space") / "ensemble"
    save_ensemble(ensemble, out, meta={"notice": DEMO_DATA_NOTICE, "synthetic_data": True})
    assert (out / ENSEMBLE_META_FILE).is_file()
    return out


@pytest.fixture(scope="session")
def tiny_pipeline(space: ModuleType, tiny_ensemble: Path):
    return space.load_pipeline(str(tiny_ensemble), device="cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(space: ModuleType, demo) -> Iterator[str]:
    """Launch `demo` with the app's hardened settings on a free loopback port; yield its URL."""
    _, url, _ = space.launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url
    finally:
        demo.close()


def real_demo(space: ModuleType, pipe, model_name: str, notice: str | None = None):
    output_dir = space.OutputDir(max_age_s=600)
    return space.build_demo(
        space.make_predict(pipe),
        predict_many_fn=space.make_predict_many(pipe),
        explain_fn=space.make_explain(
            space.make_score_fn(pipe), pipe.model.config.label2id, output_dir, grid=OCCLUSION_GRID
        ),
        model_name=model_name,
        notice=notice,
        output_dir=output_dir,
    )


@pytest.fixture(scope="module")
def real_app(space: ModuleType, tiny_pipeline, tiny_ensemble: Path) -> Iterator[str]:
    """The app serving the tiny ensemble on 127.0.0.1; yields its URL."""
    demo = real_demo(space, tiny_pipeline, str(tiny_ensemble), space.model_notice(str(tiny_ensemble)))
    with served(space, demo) as url:
        yield url
