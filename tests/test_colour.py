"""The one-matrix colour jitter: identity at zero, the right algebra, the right range."""

import torch

from cancernet_hf.data.colour import LinearColourJitter


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, 24, 32), generator=g, dtype=torch.uint8)


def test_zero_jitter_is_the_identity():
    img = _image()
    assert torch.equal(LinearColourJitter(0, 0, 0, 0)(img), img)


def test_grey_pixels_stay_grey_under_hue_and_saturation():
    grey = torch.full((3, 8, 8), 0.5)
    torch.manual_seed(0)
    out = LinearColourJitter(0, 0, 0.5, 0.5)(grey)
    assert torch.allclose(out, grey, atol=1e-5)  # hue rotation and saturation leave the grey axis alone


def test_brightness_scales_and_contrast_pulls_towards_mean_grey():
    torch.manual_seed(0)
    jitter = LinearColourJitter(0.3, 0.3, 0, 0)
    img = torch.rand(3, 16, 16) * 0.5 + 0.25
    for seed in range(5):
        torch.manual_seed(seed)
        matrix, c = jitter.matrix()
        b = float(matrix[0, 0])  # saturation 1 and no hue: matrix = b * I
        assert torch.allclose(matrix, b * torch.eye(3), atol=1e-5)
        torch.manual_seed(seed)
        out = jitter(img)
        grey = torch.tensor([0.299, 0.587, 0.114]) @ (b * img).reshape(3, -1).mean(1)
        expected = (c * b * img + (1 - c) * grey).clamp(0, 1)
        assert torch.allclose(out, expected, atol=1e-5)
        assert 0.7 <= b <= 1.3 and 0.7 <= c <= 1.3


def test_uint8_in_uint8_out_within_range_and_random():
    img = _image(1)
    jitter = LinearColourJitter(0.4, 0.4, 0.4, 0.1)
    outs = [jitter(img) for _ in range(4)]
    assert all(o.dtype == torch.uint8 and o.shape == img.shape for o in outs)
    assert len({o.sum().item() for o in outs}) > 1
