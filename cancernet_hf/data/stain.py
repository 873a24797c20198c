"""H&E stain jitter: perturb haematoxylin/eosin amounts in optical-density space (colour deconvolution).

Slides from different labs differ mostly in how much of each stain they took up, not in arbitrary
RGB shifts. Following Ruifrok & Johnston's colour deconvolution, an RGB pixel's optical density
OD = -ln(I) is a sum of stain vectors weighted by stain concentrations; scaling and shifting the
concentrations (Tellez et al. 2018, "HED jitter") imitates that variation and keeps the image
plausible. Only for H&E histopathology: on MRI/CT or Pap smears the same maths means nothing.
"""

from __future__ import annotations

import torch

# Stain optical-density vectors (R, G, B) per unit concentration: haematoxylin, eosin, DAB (residual).
_STAINS = torch.tensor(
    [
        [0.65, 0.70, 0.29],
        [0.07, 0.99, 0.11],
        [0.27, 0.57, 0.78],
    ],
    dtype=torch.float64,
)
RGB_FROM_HED = _STAINS / _STAINS.norm(dim=1, keepdim=True)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
# Darkest intensity considered (1/255 of full scale): keeps ln() finite for black pixels.
_MIN_INTENSITY = 1.0 / 255.0


def rgb_to_hed(rgb: torch.Tensor) -> torch.Tensor:
    """[3,H,W] RGB in [0,1] -> [3,H,W] stain concentrations (haematoxylin, eosin, DAB)."""
    od = -torch.log(rgb.clamp(min=_MIN_INTENSITY))
    matrix = HED_FROM_RGB.to(dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("chw,cs->shw", od, matrix)


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_hed`, clipped to [0,1]."""
    matrix = RGB_FROM_HED.to(dtype=hed.dtype, device=hed.device)
    od = torch.einsum("shw,sc->chw", hed, matrix)
    return torch.exp(-od).clamp(0.0, 1.0)


def hed_jitter(
    rgb: torch.Tensor,
    *,
    scale: float = 0.05,
    shift: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random stain-concentration jitter of one [3,H,W] RGB image in [0,1].

    Each stain's concentration becomes ``c * a + b`` with ``a ~ U(1-scale, 1+scale)`` and
    ``b ~ U(-shift, shift)`` (optical-density units), drawn once per image.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"hed_jitter expects a [3,H,W] RGB tensor, got shape {tuple(rgb.shape)}.")
    work = rgb.to(torch.float32)
    alpha = 1.0 + (torch.rand(3, generator=generator) * 2.0 - 1.0) * scale
    beta = (torch.rand(3, generator=generator) * 2.0 - 1.0) * shift
    hed = rgb_to_hed(work)
    hed = hed * alpha.view(3, 1, 1) + beta.view(3, 1, 1)
    return hed_to_rgb(hed).to(rgb.dtype)
