"""Safe image intake for the Space: refuse what cannot be a scan before decoding it, normalise the rest.

Gradio's own `gr.Image` preprocessing calls `PIL.Image.open` and raises on text files or huge images,
which would surface as a bare "Error" in the page. `checked_image()` does the checks itself and hands a
`RejectedImage` (with a message for the visitor) to the event's validator instead. 16-bit and float
images are rescaled from their value range (Gradio's RGB conversion would clip them to white).

This file depends only on Pillow, numpy and gradio: the Space does not import cancernet_hf.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the launch() limit too: "10mb"
MAX_PIXELS = 40_000_000  # decompression bombs are refused from the header, before decoding
MIN_SIDE = 16
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


@dataclass(frozen=True)
class RejectedImage:
    """An upload that is not a usable image; `message` is shown to the visitor as is."""

    message: str


def _human_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without clipping: high bit depths are min-max rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in _HIGH_DEPTH_MODES:
        # The same rule as training and the model's pipeline: linear [min, max] -> [0, 255] over finite
        # values, non-finite -> 0, a constant image keeps its value (clipped to 0..255).
        arr = np.asarray(img).astype(np.float64)
        finite = np.isfinite(arr)
        if not finite.any():
            return Image.fromarray(np.zeros(arr.shape, dtype=np.uint8)).convert("RGB")
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.full(arr.shape, min(max(lo, 0.0), 255.0))
        gray = np.rint(np.where(finite, scaled, 0.0)).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB ...; ValueError if Pillow cannot


def check_header(img: Image.Image, name: str) -> RejectedImage | None:
    """Refuse animations, bombs and thumbnails from the header alone (nothing decoded yet)."""
    width, height = img.size
    if getattr(img, "n_frames", 1) > 1:
        return RejectedImage(f"{name} is an animation ({img.n_frames} frames); upload a single still image.")
    if width * height > MAX_PIXELS:
        return RejectedImage(
            f"{name} declares {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than the "
            f"{MAX_PIXELS / 1e6:.0f} megapixel limit; downscale it (scans are classified at a few hundred pixels)."
        )
    if min(width, height) < MIN_SIDE:
        return RejectedImage(
            f"{name} is {width}x{height} pixels, smaller than {MIN_SIDE} px on a side; upload the full image."
        )
    return None


def _decode(img: Image.Image, name: str) -> Image.Image | RejectedImage:
    rejected = check_header(img, name)
    if rejected is not None:
        return rejected
    try:
        img.load()
        img = ImageOps.exif_transpose(img) or img
        return to_rgb(img)
    except (OSError, ValueError, SyntaxError) as e:  # truncated data, unsupported colour mode
        logger.info("could not decode %s: %s", name, e)
        return RejectedImage(f"{name} could not be decoded as an image ({e}); re-export it as PNG or JPEG.")


def read_image(path: str | os.PathLike, name: str | None = None) -> Image.Image | RejectedImage:
    """Open an uploaded file as RGB, or say in one sentence why it is not usable."""
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError:
        return RejectedImage(f"{name} could not be read; upload it again.")
    if size == 0:
        return RejectedImage(f"{name} is empty (0 bytes); upload the image file itself.")
    if size > MAX_UPLOAD_BYTES:
        return RejectedImage(
            f"{name} is {_human_bytes(size)}, over the {_human_bytes(MAX_UPLOAD_BYTES)} limit; "
            "upload a smaller export (JPEG or PNG)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        return RejectedImage(
            f"{name} declares far too many pixels (a decompression bomb?); upload an image under "
            f"{MAX_PIXELS / 1e6:.0f} megapixels."
        )
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return RejectedImage(
            f"{name} is not an image this app can read; upload a PNG, JPEG, TIFF, BMP or WebP file."
        )
    with img:
        return _decode(img, name)


def check_image(image: Any, what: str = "the image") -> RejectedImage | None:
    """Validator-side check of a preprocessed value: None, a RejectedImage or a PIL image."""
    if image is None:
        return RejectedImage(f"Upload {what} first (or pick an example).")
    if isinstance(image, RejectedImage):
        return image
    if isinstance(image, Image.Image):
        return check_header(image, what)
    return RejectedImage(f"Expected an image, got {type(image).__name__}.")


def checked_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` whose preprocessing never raises: unusable uploads become a `RejectedImage`.

    The safe preprocess is bound to the instance: subclassing a Gradio component would make Gradio write
    a .pyi stub next to this file at import time.
    """
    component = gr.Image(**kwargs)
    stock_preprocess = component.preprocess

    def preprocess(payload: Any) -> Image.Image | RejectedImage | None:
        if payload is None:
            return None
        name = Path(payload.orig_name).name if getattr(payload, "orig_name", None) else "the upload"
        if getattr(payload, "path", None):
            return read_image(payload.path, name)
        try:  # data: URLs (no file on disk) go through Gradio's decoder, then the same checks
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = stock_preprocess(payload)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad upload, never a stack trace
            logger.info("could not decode %s: %s", name, e)
            return RejectedImage(f"{name} is not an image this app can read; upload a PNG or JPEG file.")
        return None if img is None else _decode(img, name)

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component
