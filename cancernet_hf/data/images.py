"""Open one image file safely and turn any PIL mode into 8-bit RGB.

Why a module of its own: the dataset scanner, the transforms, evaluation and the Space all meet
files of unknown origin. Every check that can be made from the header (size, frames, mode) is
made *before* pixels are decoded, so a decompression bomb costs a few bytes of reading, not
gigabytes of memory. Every refusal is a `BadImageError` naming the file and one of the
`BAD_REASONS`, which the scanner turns into a report line.

Mode conversion choices (`to_rgb`):
- transparency (RGBA, LA, PA, P with a transparent colour) is composited on **white**: slide and
  smear backgrounds are white, so a transparent margin should look like empty glass, not black;
- 16-bit and 32-bit integer (``I;16``, ``I;16B``, ``I``) and float (``F``) images are stretched
  linearly from their **actual** [min, max] to [0, 255] (12-bit MRI stored in 16 bits stays
  visible, nothing is clipped); non-finite values become 0; a constant image keeps its value
  clipped to [0, 255];
- ``LAB`` is refused as an unsupported mode: its channel encoding differs between writers and a
  silent wrong conversion would be worse than asking the user to convert it with colour management.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..constants import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from ..errors import BadImageError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike | bytes | BinaryIO | Mapping

# Why a file is unusable; the scanner groups its report by these.
ZERO_BYTE = "zero-byte"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated or corrupt"
UNSUPPORTED_MODE = "unsupported mode"
ABSURD_DIMENSIONS = "absurd dimensions"
ANIMATED = "animated"
UNREADABLE = "unreadable"
BAD_REASONS = (ZERO_BYTE, NOT_AN_IMAGE, TRUNCATED, UNSUPPORTED_MODE, ABSURD_DIMENSIONS, ANIMATED, UNREADABLE)

_FIXES = {
    ZERO_BYTE: "re-download or delete the file",
    NOT_AN_IMAGE: "delete it or move it out of the dataset folder",
    TRUNCATED: "re-download the file (the download or copy was probably interrupted)",
    UNSUPPORTED_MODE: "convert it to RGB or grayscale (e.g. with colour management) and save it again",
    ABSURD_DIMENSIONS: f"resize it to at least {MIN_IMAGE_SIDE} px per side and at most "
    f"{MAX_IMAGE_PIXELS:,} pixels, or remove it",
    ANIMATED: "extract the frame you want as a still image",
    UNREADABLE: "check the file's permissions and the disk",
}

# Modes `to_rgb` converts; everything else (LAB, packed BGR, ...) is refused.
_DIRECT_MODES = frozenset({"RGB", "L", "1", "CMYK", "YCbCr", "HSV", "RGBX"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
SUPPORTED_MODES = frozenset(_DIRECT_MODES | _ALPHA_MODES | _HIGH_DEPTH_MODES | {"P"})


@dataclass(frozen=True)
class ImageInfo:
    """What the header says about a usable image (before any draft-mode reduction)."""

    width: int
    height: int
    mode: str
    format: str | None


def bad_image(name: str, reason: str, detail: str = "") -> BadImageError:
    """A `BadImageError` whose message follows what/which/why/fix and that carries `.reason`/`.path`."""
    shown = f" ({detail})" if detail else ""
    err = BadImageError(f"Image {name} is unusable: {reason}{shown}. Fix: {_FIXES[reason]}.")
    err.reason = reason  # type: ignore[attr-defined]
    err.path = name  # type: ignore[attr-defined]
    err.detail = detail  # type: ignore[attr-defined]
    return err


def open_image(source: ImageSource, *, draft_size: int | None = None) -> Image.Image:
    """Open, check and decode an image into an RGB PIL image with EXIF orientation applied.

    `source` is a path, raw bytes, a binary file object, or a `datasets` image dict
    (``{"bytes": ..., "path": ...}``). With `draft_size`, JPEGs decode in draft mode (DCT scaling)
    at the smallest scale whose sides are still >= `draft_size`: much faster for big JPEGs that
    are resized afterwards anyway. Raises `BadImageError` (with `.reason`) for unusable files.
    """
    image, _ = _load(source, draft_size=draft_size)
    return image


def inspect_image(source: ImageSource, *, draft_size: int = 32) -> ImageInfo:
    """Check that a file is a usable image as cheaply as possible; return its header facts.

    Runs every `open_image` check, decoding a draft-mode thumbnail (1/8 scale for JPEG) so a
    truncated file is still caught: libjpeg must read every entropy-coded byte even when it
    scales the DCT, so truncation is detected at a fraction of the full decode cost.
    """
    _, info = _load(source, draft_size=draft_size)
    return info


def to_rgb(image: Image.Image, *, name: str = "<image>") -> Image.Image:
    """Convert a PIL image of any supported mode to 8-bit RGB (see the module doc for the choices).

    Also applies a pending EXIF orientation (a no-op for images that were already transposed,
    e.g. by `datasets`, because transposing removes the tag). Raises `BadImageError` for
    unsupported modes, and for lazily opened images whose pixels turn out truncated.
    """
    try:
        image.load()  # a no-op when decoded; `datasets` hands out lazily opened files
    except Exception as e:
        raise bad_image(getattr(image, "filename", "") or name, TRUNCATED, f"{type(e).__name__}: {e}") from e
    image = _exif_transpose(image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _DIRECT_MODES:
        return image.convert("RGB")
    if mode == "P":
        if "transparency" in image.info:
            return _composite_on_white(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in _ALPHA_MODES:
        return _composite_on_white(image.convert("RGBA"))
    if mode in _HIGH_DEPTH_MODES:
        return _stretch_to_rgb(image)
    raise bad_image(name, UNSUPPORTED_MODE, f"mode {mode!r}; supported: {', '.join(sorted(SUPPORTED_MODES))}")


# ---- internals -------------------------------------------------------------------------------
def _load(source: ImageSource, *, draft_size: int | None) -> tuple[Image.Image, ImageInfo]:
    name, fp = _as_file(source)
    with fp:
        image = _open_header(fp, name)
        info = ImageInfo(image.width, image.height, image.mode, image.format)
        _check_header(image, info, name)
        if draft_size and image.format == "JPEG":
            image.draft(None, (draft_size, draft_size))
        try:
            image.load()
        except Exception as e:  # PIL raises OSError, SyntaxError, EOFError, zlib.error, struct.error...
            raise bad_image(name, TRUNCATED, f"{type(e).__name__}: {e}") from e
    return to_rgb(image, name=name), info


def _as_file(source: ImageSource) -> tuple[str, BinaryIO]:
    """(display name, open binary file) for every accepted source kind; zero-byte files refused."""
    if isinstance(source, Mapping):  # a `datasets` Image(decode=False) value
        if source.get("bytes"):
            return _as_file_bytes(source["bytes"], str(source.get("path") or "<bytes>"))
        if source.get("path"):
            return _as_file(source["path"])
        raise bad_image("<datasets image>", ZERO_BYTE, "neither bytes nor path given")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _as_file_bytes(bytes(source), "<bytes>")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            fp = open(path, "rb")  # noqa: SIM115 - closed by the caller's `with`
        except FileNotFoundError:
            raise
        except OSError as e:  # permissions, a directory named like an image, I/O errors
            raise bad_image(str(path), UNREADABLE, f"{type(e).__name__}: {e}") from e
        if size == 0:
            fp.close()
            raise bad_image(str(path), ZERO_BYTE, "file has 0 bytes")
        return str(path), fp
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "<stream>"))
        data = source.read()
        return _as_file_bytes(data, name)
    raise TypeError(
        f"open_image() takes a path, bytes, a binary file or a datasets image dict, not {type(source)}"
    )


def _as_file_bytes(data: bytes, name: str) -> tuple[str, BinaryIO]:
    if not data:
        raise bad_image(name, ZERO_BYTE, "no data")
    return name, io.BytesIO(data)


def _open_header(fp: BinaryIO, name: str) -> Image.Image:
    """PIL open reads the header only; turn its refusals into our reasons."""
    try:
        return Image.open(fp)  # PIL warns above 89M pixels; we refuse above MAX_IMAGE_PIXELS anyway
    except Image.DecompressionBombError as e:
        raise bad_image(name, ABSURD_DIMENSIONS, f"decompression bomb refused from the header: {e}") from e
    except UnidentifiedImageError as e:
        raise bad_image(name, NOT_AN_IMAGE, "no image format recognises its content") from e
    except Exception as e:  # a recognised format whose header is broken
        raise bad_image(name, TRUNCATED, f"broken header, {type(e).__name__}: {e}") from e


def _check_header(image: Image.Image, info: ImageInfo, name: str) -> None:
    pixels = info.width * info.height
    if pixels > MAX_IMAGE_PIXELS:
        raise bad_image(
            name,
            ABSURD_DIMENSIONS,
            f"{info.width}x{info.height} = {pixels:,} pixels > {MAX_IMAGE_PIXELS:,}; refused before decoding",
        )
    if min(info.width, info.height) < MIN_IMAGE_SIDE:
        raise bad_image(name, ABSURD_DIMENSIONS, f"{info.width}x{info.height}, a side < {MIN_IMAGE_SIDE} px")
    # MPO is a camera JPEG carrying extra views (stereo, depth); its first frame is the photo.
    frames = getattr(image, "n_frames", 1)
    if image.format != "MPO" and (getattr(image, "is_animated", False) or frames > 1):
        raise bad_image(name, ANIMATED, f"{frames} frames: animated or multi-page")
    if info.mode not in SUPPORTED_MODES:
        raise bad_image(name, UNSUPPORTED_MODE, f"mode {info.mode!r}")


def _exif_transpose(image: Image.Image) -> Image.Image:
    try:
        orientation = image.getexif().get(0x0112)  # Orientation
    except Exception:  # a broken EXIF block must not make the pixels unusable
        return image
    if orientation in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _stretch_to_rgb(image: Image.Image) -> Image.Image:
    """Linear [min, max] -> [0, 255] over finite values; never clipped to 255 like PIL's convert."""
    array = np.asarray(image).astype(np.float64)  # astype also fixes I;16B's big-endian order
    finite = np.isfinite(array)
    if not finite.any():
        out = np.zeros(array.shape, dtype=np.uint8)
    else:
        lo, hi = float(array[finite].min()), float(array[finite].max())
        if hi > lo:
            scaled = (np.where(finite, array, lo) - lo) * (255.0 / (hi - lo))
        else:
            scaled = np.full(array.shape, min(max(lo, 0.0), 255.0))
        out = np.rint(np.where(finite, scaled, 0.0)).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")
