"""Occlusion sensitivity: which regions, when greyed out, lower the ensemble's score for its top class.

Chosen over Grad-CAM/attention rollout because it needs nothing but the model's probabilities, so it
explains the whole ensemble (any mix of ViT, ConvNeXt, Swin, timm members) with one honest method.
Cost: grid*grid extra images through the model, batched. Outputs are PNG files written atomically
(Gradio serves half-written files when a function returns PIL images under concurrency).

Depends only on numpy and Pillow (torch only through the `score_fn` the app passes in).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

# score_fn(list of RGB PIL images) -> (N, num_labels) probabilities
ScoreFn = Callable[[list[Image.Image]], np.ndarray]

# Anchor colours of a perceptually ordered dark-to-bright ramp (black-purple-red-orange-yellow).
_RAMP = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
     [252, 255, 164]],
    dtype=np.float64,
)  # fmt: skip


def occlusion_map(
    image: Image.Image,
    score_fn: ScoreFn,
    *,
    target: int | None = None,
    grid: int = 6,
    work_size: int = 160,
    batch_size: int = 16,
) -> tuple[np.ndarray, int, float]:
    """Score drop of class `target` when each of grid x grid patches is replaced by the image mean.

    Returns (drops as a (grid, grid) float array, the target index, the unoccluded score). Positive
    values mark evidence for the class; the map is not normalised here.
    """
    if grid < 2:
        raise ValueError(f"grid must be at least 2, got {grid}")
    work = image.convert("RGB")
    work.thumbnail((work_size, work_size), Image.Resampling.BILINEAR)
    base = np.asarray(work, dtype=np.uint8)
    fill = base.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    height, width = base.shape[:2]
    ys = np.linspace(0, height, grid + 1).round().astype(int)
    xs = np.linspace(0, width, grid + 1).round().astype(int)

    probs = np.asarray(score_fn([Image.fromarray(base)]), dtype=np.float64)[0]
    target = int(np.argmax(probs)) if target is None else int(target)
    reference = float(probs[target])

    variants = []
    for i in range(grid):
        for j in range(grid):
            occluded = base.copy()
            occluded[ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = fill
            variants.append(Image.fromarray(occluded))
    scores = []
    for start in range(0, len(variants), batch_size):
        chunk = np.asarray(score_fn(variants[start : start + batch_size]), dtype=np.float64)
        scores.append(chunk[:, target])
    drops = reference - np.concatenate(scores).reshape(grid, grid)
    return drops, target, reference


def colorize(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the ramp above."""
    positions = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    frac = (positions - low)[..., None]
    return np.rint(_RAMP[low] * (1 - frac) + _RAMP[high] * frac).astype(np.uint8)


def overlay(image: Image.Image, drops: np.ndarray, *, side: int = 384, alpha: float = 0.5) -> Image.Image:
    """Blend the positive part of the map (scaled to its maximum) over the image, longer side = `side`."""
    shown = image.convert("RGB")
    scale = side / max(shown.size)
    shown = shown.resize(
        (max(1, round(shown.width * scale)), max(1, round(shown.height * scale))), Image.Resampling.BICUBIC
    )
    positive = np.clip(drops, 0.0, None)
    peak = float(positive.max())
    normalised = positive / peak if peak > 0 else positive
    coarse = Image.fromarray(np.rint(normalised * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize(shown.size, Image.Resampling.BICUBIC), dtype=np.float64) / 255.0
    heat = colorize(smooth).astype(np.float64)
    base = np.asarray(shown, dtype=np.float64)
    # Weight the colour by the evidence so regions without any keep the original image visible.
    weight = alpha * smooth[..., None]
    blended = base * (1 - weight) + heat * weight
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


class OutputDir:
    """A private temp folder for generated files: atomic writes, unique names, old files pruned."""

    def __init__(self, root: str | os.PathLike | None = None, *, max_age_s: float = 3600.0) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cancernet-space-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s

    def write(self, data: bytes, suffix: str, stem: str = "out") -> Path:
        """Write to a hidden temp name, then rename: a reader never sees a partial file."""
        self.prune()
        final = self.root / f"{stem}-{uuid.uuid4().hex[:12]}{suffix}"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".partial-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return final

    def write_png(self, image: Image.Image, stem: str = "heatmap") -> Path:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return self.write(buffer.getvalue(), ".png", stem)

    def prune(self) -> None:
        """Delete files older than max_age_s (Gradio has copied them into its own cache by then)."""
        cutoff = time.time() - self.max_age_s
        for path in self.root.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:  # another request pruned it first
                continue
