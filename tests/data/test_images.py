"""open_image/to_rgb: every refusal reason, every mode to RGB with the right pixel values, EXIF, draft."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from cancernet_hf.data.images import (
    ABSURD_DIMENSIONS,
    ANIMATED,
    NOT_AN_IMAGE,
    TRUNCATED,
    UNSUPPORTED_MODE,
    ZERO_BYTE,
    inspect_image,
    open_image,
    to_rgb,
)
from cancernet_hf.errors import BadImageError


def _px(image: Image.Image, xy=(0, 0)) -> tuple[int, ...]:
    assert image.mode == "RGB"
    return image.getpixel(xy)


# ---- refusals --------------------------------------------------------------------------------
def test_every_bad_kind_is_refused_with_its_reason(tmp_path, imgs):
    for name, (write, reason) in imgs.bad_files.items():
        if name == "notes.txt":  # the extension check is the scanner's; its content is text anyway
            reason = NOT_AN_IMAGE
        path = tmp_path / name
        write(path)
        with pytest.raises(BadImageError) as err:
            open_image(path)
        assert err.value.reason == reason, name
        assert name in str(err.value) and "Fix:" in str(err.value)


def test_bomb_is_refused_from_the_header_without_decoding(tmp_path, imgs, monkeypatch):
    def never(self, *a, **k):
        raise AssertionError("a bomb must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    for side in (8000, 100_000):  # below and above PIL's own bomb limit
        path = tmp_path / f"bomb{side}.png"
        path.write_bytes(imgs.bomb_png(side, side))
        with pytest.raises(BadImageError) as err:
            open_image(path)
        assert err.value.reason == ABSURD_DIMENSIONS
        assert str(side) in str(err.value)


def test_truncated_jpeg_is_caught_even_by_the_cheap_draft_check(imgs):
    data = imgs.jpeg_bytes(256)
    assert inspect_image(data).width == 256  # the whole file is fine
    for cut in (len(data) // 2, len(data) - 64):
        with pytest.raises(BadImageError) as err:
            inspect_image(data[:cut])
        assert err.value.reason == TRUNCATED


def test_zero_bytes_and_animated_and_lab(tmp_path, imgs):
    with pytest.raises(BadImageError) as err:
        open_image(b"")
    assert err.value.reason == ZERO_BYTE
    gif = tmp_path / "a.gif"
    imgs.bad_files["anim.gif"][0](gif)
    with pytest.raises(BadImageError) as err:
        open_image(gif)
    assert err.value.reason == ANIMATED and "3 frames" in str(err.value)
    with pytest.raises(BadImageError) as err:
        to_rgb(Image.new("LAB", (20, 20)))
    assert err.value.reason == UNSUPPORTED_MODE


def test_still_gif_and_camera_mpo_are_fine(tmp_path):
    path = tmp_path / "still.gif"
    Image.new("RGB", (20, 20), (255, 0, 0)).save(path)
    assert _px(open_image(path)) == (255, 0, 0)
    mpo = tmp_path / "camera.jpg"  # a JPEG with a second (e.g. depth) view: use the first
    first, second = Image.new("RGB", (40, 20), (0, 0, 255)), Image.new("RGB", (40, 20), (255, 0, 0))
    first.save(mpo, "MPO", save_all=True, append_images=[second])
    assert Image.open(mpo).n_frames == 2
    out = open_image(mpo)
    assert out.size == (40, 20) and _px(out)[2] > 200 and _px(out)[0] < 60


# ---- modes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (20, 20), 100), (100, 100, 100)),
        (Image.new("1", (20, 20), 1), (255, 255, 255)),
        (Image.new("1", (20, 20), 0), (0, 0, 0)),
        (Image.new("LA", (20, 20), (100, 255)), (100, 100, 100)),
        (Image.new("LA", (20, 20), (100, 0)), (255, 255, 255)),  # transparent -> white background
        (Image.new("RGBA", (20, 20), (255, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (20, 20), (10, 20, 30, 255)), (10, 20, 30)),
        (Image.new("CMYK", (20, 20), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("CMYK", (20, 20), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("YCbCr", (20, 20), (76, 85, 255)), (254, 0, 0)),
        (Image.new("HSV", (20, 20), (0, 255, 255)), (255, 0, 0)),
    ],
    ids=[
        "L",
        "1-white",
        "1-black",
        "LA-opaque",
        "LA-clear",
        "RGBA-clear",
        "RGBA-opaque",
        "CMYK-white",
        "CMYK-red",
        "YCbCr",
        "HSV",
    ],
)
def test_mode_to_rgb_pixel_values(image, expected):
    out = to_rgb(image)
    assert out.size == image.size
    assert all(abs(a - b) <= 1 for a, b in zip(_px(out), expected)), (_px(out), expected)


def test_half_transparent_rgba_is_composited_on_white():
    r, g, b = _px(to_rgb(Image.new("RGBA", (20, 20), (255, 0, 0, 128))))
    assert r == 255 and 125 <= g <= 128 and g == b


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    assert _px(to_rgb(pal)) == (0, 200, 0)
    path = tmp_path / "t.png"
    pal.save(path, transparency=1)  # index 1 is transparent
    assert _px(open_image(path)) == (255, 255, 255)
    pa = Image.new("PA", (20, 20), (1, 0))
    pa.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    assert _px(to_rgb(pa)) == (255, 255, 255)


def _gradient16(maximum: int) -> np.ndarray:
    return np.tile(np.linspace(0, maximum, 64).astype(np.uint16), (32, 1))


@pytest.mark.parametrize("maximum", [65535, 4095])  # full 16-bit and 12-bit-in-16-bit (MRI)
@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("TIFF", "tif")])
def test_16bit_gradient_is_rescaled_not_clipped(tmp_path, maximum, fmt, suffix):
    path = tmp_path / f"g.{suffix}"
    Image.fromarray(_gradient16(maximum)).save(path, format=fmt)
    assert Image.open(path).mode.startswith("I;16")
    out = np.asarray(open_image(path))
    row = out[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row.astype(int)) >= 0)
    assert (out == 255).mean() < 0.05  # PIL's own convert("RGB") would make ~all of it 255
    assert np.array_equal(out[..., 0], out[..., 2])


def test_big_endian_16bit_and_32bit_int_and_float(tmp_path):
    ramp = _gradient16(1000)
    big = Image.frombytes("I;16B", (64, 32), ramp.astype(">u2").tobytes())
    assert _px(to_rgb(big), (63, 0)) == (255, 255, 255) and _px(to_rgb(big), (0, 0)) == (0, 0, 0)
    mid = _px(to_rgb(big), (32, 0))[0]
    assert 120 <= mid <= 135

    path = tmp_path / "i32.tif"
    Image.fromarray(ramp.astype(np.int32) - 500).save(path)  # negative values too
    assert Image.open(path).mode == "I"
    row = np.asarray(open_image(path))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and 120 <= row[32] <= 135

    floats = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (32, 1))
    floats[0, 5] = np.nan
    path = tmp_path / "f.tif"
    Image.fromarray(floats).save(path)
    out = np.asarray(open_image(path))[..., 0]
    assert out[1, 0] == 0 and out[1, -1] == 255 and out[0, 5] == 0


def test_constant_high_depth_image_keeps_its_value():
    assert _px(to_rgb(Image.new("I;16", (20, 20), 40))) == (40, 40, 40)
    assert _px(to_rgb(Image.new("I;16", (20, 20), 60000))) == (255, 255, 255)


# ---- EXIF, draft mode, sources ---------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = tmp_path / "rot.jpg"
    stored.save(path, exif=exif, quality=95)
    out = open_image(path)
    assert out.size == (20, 40)
    top, bottom = _px(out, (10, 5)), _px(out, (10, 35))
    assert top[0] > 200 and top[2] < 60  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_jpeg_draft_mode_decodes_smaller_but_not_below_the_request(tmp_path, imgs):
    path = tmp_path / "big.jpg"
    imgs.write(path, size=(512, 512), fmt="JPEG")
    assert open_image(path).size == (512, 512)
    for request, side in ((100, 128), (200, 256), (300, 512)):
        assert open_image(path, draft_size=request).size == (side, side)
    png = tmp_path / "big.png"
    imgs.write(png, size=(512, 512))
    assert open_image(png, draft_size=100).size == (512, 512)  # not a JPEG: full decode


def test_sources_path_bytes_stream_and_datasets_dict(tmp_path, imgs):
    path = imgs.write(tmp_path / "x.png", mode="L")
    data = path.read_bytes()
    expected = np.asarray(open_image(str(path)))
    for source in (
        path,
        data,
        io.BytesIO(data),
        {"bytes": data, "path": "x.png"},
        {"bytes": None, "path": str(path)},
    ):
        assert np.array_equal(np.asarray(open_image(source)), expected)
    with pytest.raises(FileNotFoundError):
        open_image(tmp_path / "missing.png")
    info = inspect_image(path)
    assert (info.width, info.height, info.mode, info.format) == (32, 32, "L", "PNG")


def test_to_rgb_of_a_lazily_opened_truncated_file_raises_bad_image(tmp_path, imgs):
    path = tmp_path / "cut.jpg"
    path.write_bytes(imgs.jpeg_bytes(128)[:2000])
    lazy = Image.open(path)  # what `datasets` hands to transforms: header read, pixels not yet
    with pytest.raises(BadImageError) as err:
        to_rgb(lazy)
    assert err.value.reason == TRUNCATED and "cut.jpg" in str(err.value)
