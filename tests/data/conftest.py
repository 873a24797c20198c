"""Builders for tiny hand-made image files and dataset folders (every bad kind included)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

# Sub-classes of the hand-made dataset: two main classes with two subs each, one with one.
HAND_MADE = {
    "ALL": ["all_benign", "all_early"],
    "Lung and Colon Cancer": ["colon_aca", "lung_scc"],
    "Brain Cancer": ["brain_glioma"],
}
PER_SUB = 2


def write_image(
    path: Path, mode: str = "RGB", size: tuple[int, int] = (32, 32), fmt: str | None = None, **kw
):
    """A gradient image of `mode` (deterministic content, different per path name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    seed = sum(path.name.encode())
    ramp = (np.add.outer(np.arange(h), np.arange(w)) * 255 // max(1, w + h - 2)).astype(np.uint8)
    rgb = np.stack([ramp, np.roll(ramp, seed % w, axis=1), np.full_like(ramp, seed % 256)], axis=-1)
    image = Image.fromarray(rgb).convert(mode) if mode != "RGB" else Image.fromarray(rgb)
    image.save(path, format=fmt, **kw)
    return path


def noisy_jpeg_bytes(size: int = 64, seed: int = 0) -> bytes:
    """A JPEG with enough entropy-coded data that cutting it leaves a truncated stream."""
    data = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(data).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def png_with_header_size(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims width x height (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("L", (32, 32), 7).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def lab_tiff(path: Path) -> Path:
    Image.new("LAB", (32, 32), (50, 128, 128)).save(path, format="TIFF")
    return path


# Each bad kind: file name and writer, and the reason the scanner must report.
BAD_FILES: dict[str, tuple[Callable[[Path], object], str]] = {
    "zero.jpg": (lambda p: p.write_bytes(b""), "zero-byte"),
    "truncated.jpg": (lambda p: p.write_bytes(noisy_jpeg_bytes()[:1500]), "truncated or corrupt"),
    "text.jpg": (lambda p: p.write_text("not an image at all\n"), "not an image"),
    "notes.txt": (lambda p: p.write_text("a note\n"), "not an image"),
    "lab.tif": (lab_tiff, "unsupported mode"),
    "bomb.png": (lambda p: p.write_bytes(png_with_header_size(8000, 8000)), "absurd dimensions"),
    "hugebomb.png": (lambda p: p.write_bytes(png_with_header_size(100_000, 100_000)), "absurd dimensions"),
    "tiny.png": (lambda p: write_image(p, size=(8, 8)), "absurd dimensions"),
    "anim.gif": (animated_gif, "animated"),
}


def build_tree(base: Path, *, wrapper: str | None = None, flat: bool = False) -> Path:
    """The hand-made dataset under `base` (optionally inside a wrapper folder, or flat)."""
    root = base / wrapper if wrapper else base
    for main, subs in HAND_MADE.items():
        for sub in subs:
            folder = root / sub if flat else root / main / sub
            for i in range(PER_SUB):
                write_image(folder / f"{sub}_{i}.jpg", fmt="JPEG")
    return base


def add_litter(folder: Path) -> None:
    """OS litter and hidden entries that must be ignored silently."""
    (folder / ".DS_Store").write_bytes(b"\x00\x01junk")
    (folder / "Thumbs.db").write_bytes(b"junk")
    (folder / "._all_benign_0.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    write_image(folder / ".hidden" / "x.jpg")
    (folder / "__MACOSX").mkdir(exist_ok=True)
    (folder / "__MACOSX" / "._x.jpg").write_bytes(b"junk")


@pytest.fixture
def nested_dataset(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "Multi Cancer")


@pytest.fixture
def imgs() -> SimpleNamespace:
    """The builders above, for tests (test modules do not import conftest)."""
    return SimpleNamespace(
        write=write_image,
        jpeg_bytes=noisy_jpeg_bytes,
        bomb_png=png_with_header_size,
        bad_files=BAD_FILES,
        build_tree=build_tree,
        add_litter=add_litter,
        hand_made=HAND_MADE,
        per_sub=PER_SUB,
    )
