"""Colour jitter as ONE 3x3 colour matrix: brightness, contrast, saturation and hue in a single pass.

torchvision's hue jitter converts every pixel RGB -> HSV -> RGB and cost ~8 ms of a ~14 ms 224 px train
sample (bench/data_path.py). A hue shift is a rotation of the chroma plane in YIQ space, and brightness,
saturation and contrast (about the image's mean grey) are linear too, so the four compose into one
matrix plus an offset. It differs slightly from HSV hue (YIQ chroma, no clamping between the steps) but
covers the same augmentation range.
"""

from __future__ import annotations

import math

import torch

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)
_GREY = _RGB2YIQ[0]


class LinearColourJitter:
    """Random brightness/contrast/saturation factors in [1-a, 1+a] and a hue rotation in [-h, h] turns."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue={hue} must be in [0, 0.5] (a fraction of a full turn).")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    @staticmethod
    def _factor(amount: float) -> float:
        return float(torch.empty(()).uniform_(max(0.0, 1 - amount), 1 + amount)) if amount else 1.0

    def matrix(self) -> tuple[torch.Tensor, float]:
        """A random (3x3 matrix, contrast factor) pair; exposed so tests can check the algebra."""
        b, s = self._factor(self.brightness), self._factor(self.saturation)
        theta = float(torch.empty(()).uniform_(-self.hue, self.hue)) * 2 * math.pi if self.hue else 0.0
        cos, sin = math.cos(theta), math.sin(theta)
        rotate = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
        saturate = s * torch.eye(3) + (1 - s) * _GREY.expand(3, 3)
        return b * (_YIQ2RGB @ rotate @ _RGB2YIQ @ saturate), self._factor(self.contrast)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 or float [3,H,W] in, same dtype and range out."""
        matrix, c = self.matrix()
        x = pixels.reshape(3, -1).float()
        mixed = matrix @ x
        mean_grey = float(_GREY @ mixed.mean(1))
        out = (c * mixed + (1 - c) * mean_grey).reshape(pixels.shape)
        if pixels.dtype == torch.uint8:
            return out.clamp_(0, 255).round_().to(torch.uint8)
        return out.clamp_(0, 1).to(pixels.dtype)
