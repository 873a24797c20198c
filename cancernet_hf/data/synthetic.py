"""The demo dataset: procedurally generated images in the exact Multi Cancer layout.

Every sub-class gets a small renderer that imitates its modality: brightfield microscopy is composed
in optical density (Beer-Lambert: stain concentration maps x stain colour vectors, so stains mix like
real ones), MRI and CT slices are composed as grayscale intensity. Classes differ by morphology (shape,
size, arrangement), density and texture; every image also gets random stain strength, tint, brightness
and gamma, so the mean colour of an image says little about its sub-class. A known number of
near-duplicate groups (rot90/flip/brightness/zoom copies, dihedral only where the taxonomy allows it)
is planted and listed in the hidden manifest, so the leakage-aware split can be checked.

    cancernet data synth --out data/demo --per-class 50 --size 128 --seed 0

Everything is vectorised numpy per image; a blob (cell, nucleus, gland) is drawn in its bounding box.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy.ndimage import gaussian_filter

from ..constants import DEMO_DATA_NOTICE, SYNTH_MANIFEST_FILE
from ..errors import DatasetLayoutError, TaxonomyError
from ..taxonomy import MULTI_CANCER, Taxonomy

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
JPEG_QUALITY = 90
DEFAULT_GROUPS_PER_CLASS = 2
MAX_COPIES_PER_GROUP = 4
# Planted copies are "light" augmentations: the pHash links rot90/flip/brightness copies reliably and
# zoomed/shifted ones only up to a few percent (measured; see splits.DEFAULT_THRESHOLD).
MAX_COPY_ZOOM = 1.04
MAX_COPY_GAIN = 1.1

Array = np.ndarray
Renderer = Callable[[np.random.Generator, int], Array]  # (rng, size) -> HxWx3 float in [0, 1]


@dataclass
class SynthResult:
    """What `generate_demo_dataset` wrote."""

    root: Path
    num_images: int
    planted_groups: list[list[str]]  # relative posix paths; the first one is the original
    per_class: int
    size: int
    seed: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        copies = sum(len(g) - 1 for g in self.planted_groups)
        return (
            f"Synthetic demo dataset at {self.root}: {self.num_images} JPEGs, {len(self.counts)} sub-classes x "
            f"{self.per_class}, {self.size}px, seed {self.seed}; planted {len(self.planted_groups)} near-duplicate "
            f"groups ({copies} copies); generated in {self.seconds:.1f}s.\n{DEMO_DATA_NOTICE}"
        )


# ==== drawing primitives ===========================================================================


def _noise(rng: np.random.Generator, size: int, cell: float, aniso: float = 1.0) -> Array:
    """Smooth zero-mean, unit-std noise with feature size ~`cell` px (stretched by `aniso` along x)."""
    gh = max(2, int(size / max(cell, 0.5)) + 2)
    gw = max(2, int(size / max(cell * aniso, 0.5)) + 2)
    low = rng.standard_normal((gh, gw)).astype(np.float32)
    up = np.asarray(Image.fromarray(low, mode="F").resize((size, size), Image.Resampling.BICUBIC))
    return (up - up.mean()) / (up.std() + 1e-6)


def _blob(
    size: int,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    theta: float = 0.0,
    *,
    irregular: float = 0.0,
    rng: np.random.Generator | None = None,
    edge: float = 1.0,
) -> tuple[tuple[slice, slice], Array] | None:
    """Soft alpha of an (irregular) ellipse, cropped to its bounding box: (slices, alpha patch)."""
    reach = max(rx, ry) * (1.0 + 2.5 * irregular) + 2 * edge + 1
    x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 2)
    y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    u, v = (c * dx + s * dy) / np.float32(max(rx, 0.3)), (c * dy - s * dx) / np.float32(max(ry, 0.3))
    rho = np.sqrt(u * u + v * v)
    bound = 1.0
    if irregular > 0 and rng is not None:
        phi = np.arctan2(v, u)
        amps = (rng.normal(0, irregular, 4) / np.arange(1, 5) ** 0.7).astype(np.float32)
        phases = rng.uniform(0, 2 * np.pi, 4).astype(np.float32)
        harmonics = np.cos(phi[..., None] * np.arange(2, 6, dtype=np.float32) + phases)
        bound = np.maximum(1.0 + harmonics @ amps, 0.3)
    alpha = np.clip((bound - rho) * (0.5 * (rx + ry)) / edge + 0.5, 0.0, 1.0)
    return (slice(y0, y1), slice(x0, x1)), alpha


def _paint(layer: Array, blob, value: float | Array, op: str = "max") -> None:
    if blob is None:
        return
    sl, a = blob
    if op == "max":
        np.maximum(layer[sl], a * value, out=layer[sl])
    elif op == "add":
        layer[sl] += a * value
    elif op == "erase":  # multiply by (1 - value * alpha)
        layer[sl] *= 1.0 - value * a
    else:  # "over": alpha-composite a constant
        layer[sl] = layer[sl] * (1 - a) + a * value


def _grid_points(rng: np.random.Generator, size: int, spacing: float, jitter: float = 0.35) -> Array:
    """Evenly spread random points (jittered grid) covering the canvas and a margin; shape (k, 2) x,y."""
    n = int(size / spacing) + 3
    g = (np.arange(n) - 1) * spacing
    xx, yy = np.meshgrid(g, g)
    xx = xx + (np.arange(n)[:, None] % 2) * spacing / 2  # hexagonal-ish rows
    pts = np.stack([xx.ravel(), yy.ravel()], 1) + rng.uniform(-jitter, jitter, (n * n, 2)) * spacing
    return pts.astype(np.float32)


def _select(rng: np.random.Generator, pts: Array, mask: Array, prob: float = 1.0) -> Array:
    """Points that fall where `mask` > 0.5, each kept with probability `prob`."""
    size = mask.shape[0]
    ij = np.clip(pts.round().astype(int), 0, size - 1)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
    keep = inside & (mask[ij[:, 1], ij[:, 0]] > 0.5) & (rng.random(len(pts)) < prob)
    return pts[keep]


def _nuclei(
    rng: np.random.Generator,
    layer: Array,
    pts: Array,
    r: tuple[float, float],
    *,
    elong: tuple[float, float] = (1.0, 1.2),
    irregular: float = 0.05,
    value: tuple[float, float] = (0.8, 1.0),
    theta: Array | float | None = None,
    op: str = "max",
) -> None:
    """Draw one nucleus per point with random radius, elongation, orientation, irregularity and darkness."""
    size = layer.shape[0]
    k = len(pts)
    radii = rng.uniform(*r, k)
    el = rng.uniform(*elong, k)
    vals = rng.uniform(*value, k)
    if theta is None:
        angles = rng.uniform(0, np.pi, k)
    else:
        angles = np.broadcast_to(np.asarray(theta, np.float32), (k,)) + rng.normal(0, 0.2, k)
    for (x, y), rad, e, v, t in zip(pts, radii, el, vals, angles):
        b = _blob(size, x, y, rad * e, rad / e, t, irregular=irregular, rng=rng, edge=0.8)
        _paint(layer, b, v, op)


def _ring_points(
    cx: float, cy: float, rx: float, ry: float, theta: float, n: int, rng
) -> tuple[Array, Array]:
    """n points along an ellipse (and the outward normal angle at each)."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.05, n)
    c, s = math.cos(theta), math.sin(theta)
    ex, ey = rx * np.cos(phi), ry * np.sin(phi)
    pts = np.stack([cx + c * ex - s * ey, cy + s * ex + c * ey], 1)
    return pts.astype(np.float32), (phi + theta).astype(np.float32)


# ==== colour: brightfield microscopy =================================================================

# Optical density per unit stain (R, G, B): what each stain absorbs.
HEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
EOSIN = np.array([0.07, 0.99, 0.11], np.float32)
GIEMSA_NUCLEUS = np.array([0.55, 0.85, 0.20], np.float32)  # purple (azure B + eosin)
GIEMSA_CYTOPLASM = np.array([0.60, 0.30, 0.10], np.float32)  # pale blue
LIGHT_GREEN = np.array([0.85, 0.25, 0.45], np.float32)  # Pap cyanophilic cytoplasm
ORANGE_G = np.array([0.05, 0.45, 0.95], np.float32)  # Pap keratinised cytoplasm


def _brightfield(rng: np.random.Generator, layers: list[tuple[Array, Array, float]], bg: Array) -> Array:
    """Compose stain concentration maps into RGB with per-image stain, tint and brightness jitter."""
    size = layers[0][0].shape[0]
    od = np.zeros((size, size, 3), np.float32)
    for conc, vec, strength in layers:
        v = vec * rng.uniform(0.85, 1.15, 3).astype(np.float32)  # per-image stain hue drift
        od += np.maximum(conc, 0)[..., None] * (v * strength * rng.uniform(0.6, 1.5))
    tint = np.clip(np.asarray(bg, np.float32) + rng.normal(0, 0.035, 3), 0.6, 1.0).astype(np.float32)
    light = 1.0 + 0.04 * _noise(rng, size, size / 2)  # uneven illumination
    return tint * light[..., None] * np.exp(-od)


# ==== blood smear (ALL) ==============================================================================

_BLAST = {  # count, nucleus radius, cytoplasm/nucleus radius, irregularity, chromatin (fine, coarse), nucleoli
    "all_benign": ((1, 3), (4.5, 6.0), 1.30, 0.04, (0.15, 0.45), 0),
    "all_early": ((2, 4), (8.5, 11.0), 1.10, 0.08, (0.35, 0.05), 2),
    "all_pre": ((5, 9), (6.5, 8.0), 1.18, 0.16, (0.20, 0.25), 1),
    "all_pro": ((3, 5), (9.0, 12.0), 1.50, 0.30, (0.30, 0.15), 3),
}


def _blood_smear(sub: str) -> Renderer:
    count, nuc_r, cyto, irr, (fine_c, coarse_c), nucleoli = _BLAST[sub]

    def render(rng: np.random.Generator, size: int) -> Array:
        s = size / 128
        rbc = np.zeros((size, size), np.float32)
        pts = _grid_points(rng, size, 15 * s, 0.45)
        for x, y in pts[rng.random(len(pts)) < 0.8]:
            r = rng.uniform(5.5, 7.5) * s
            disc = _blob(size, x, y, r, r * rng.uniform(0.85, 1.0), rng.uniform(0, np.pi), edge=1.2)
            _paint(rbc, disc, 0.45, "max")
            _paint(rbc, _blob(size, x, y, r * 0.45, r * 0.45, edge=2.0 * s), 0.45, "erase")  # central pallor
        nuc = np.zeros_like(rbc)
        cyt = np.zeros_like(rbc)
        nucleo = np.zeros_like(rbc)
        n = rng.integers(count[0], count[1] + 1)
        for _ in range(n):
            r = rng.uniform(*nuc_r) * s
            x, y = rng.uniform(r, size - r, 2)
            t = rng.uniform(0, np.pi)
            rc = r * cyto * rng.uniform(0.95, 1.1)
            cell = _blob(size, x, y, rc, rc * rng.uniform(0.85, 1.0), t, irregular=0.04, rng=rng, edge=1.2)
            _paint(cyt, cell, 1.0)
            _paint(rbc, cell, 1.0, "erase")
            off = (rc - r) * rng.uniform(0, 0.8)
            nx, ny = x + off * math.cos(t), y + off * math.sin(t)
            _paint(nuc, _blob(size, nx, ny, r, r * rng.uniform(0.8, 1.0), t, irregular=irr, rng=rng), 1.0)
            if sub == "all_pro":  # nuclear cleft
                cut = _blob(
                    size, nx + r * 0.8 * math.cos(t), ny + r * 0.8 * math.sin(t), r * 0.45, r * 0.18, t
                )
                _paint(nuc, cut, 0.9, "erase")
            for _ in range(nucleoli):
                a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5) * r
                rn = rng.uniform(0.12, 0.2) * r
                _paint(nucleo, _blob(size, nx + d * math.cos(a), ny + d * math.sin(a), rn, rn), 1.0)
        chromatin = 1.0 + fine_c * _noise(rng, size, 1.2 * s) + coarse_c * _noise(rng, size, 3.0 * s)
        nuc = nuc * np.clip(chromatin, 0.25, 2.0) * (1 - 0.6 * nucleo)
        layers = [(rbc, EOSIN, 0.55), (cyt * (1 - nuc), GIEMSA_CYTOPLASM, 0.45), (nuc, GIEMSA_NUCLEUS, 1.1)]
        return _brightfield(rng, layers, np.array([0.96, 0.93, 0.94], np.float32))

    return render


# ==== Pap cytology (cervix) ===========================================================================

_PAP = {  # cells (min,max), cell radius, nucleus radius, irregularity, orange fraction, halo, cluster
    "cervix_sfi": ((2, 4), (20, 30), (2.2, 3.2), 0.18, 0.5, 0.0, False),
    "cervix_pab": ((4, 8), (8, 11), (4.0, 5.2), 0.04, 0.0, 0.0, False),
    "cervix_mep": ((3, 6), (11, 15), (4.0, 5.5), 0.28, 0.1, 0.0, False),
    "cervix_koc": ((2, 4), (16, 22), (4.0, 6.0), 0.12, 0.4, 0.62, False),
    "cervix_dyk": ((6, 11), (6, 9), (2.0, 3.0), 0.15, 0.9, 0.0, True),
}


def _pap(sub: str) -> Renderer:
    count, cell_r, nuc_r, irr, orange_p, halo, cluster = _PAP[sub]

    def render(rng: np.random.Generator, size: int) -> Array:
        s = size / 128
        green = np.clip(0.05 + 0.04 * _noise(rng, size, 20 * s), 0, None)  # mucus background
        orange = np.zeros_like(green)
        nuc = np.zeros_like(green)
        n = rng.integers(count[0], count[1] + 1)
        centre = rng.uniform(0.3, 0.7, 2) * size
        for _ in range(n):
            rc = rng.uniform(*cell_r) * s
            if cluster:
                x, y = centre + rng.normal(0, 12 * s, 2)
            else:
                x, y = rng.uniform(0.1 * size, 0.9 * size, 2)
            t = rng.uniform(0, np.pi)
            cell = _blob(size, x, y, rc, rc * rng.uniform(0.7, 1.0), t, irregular=irr, rng=rng, edge=1.2)
            density = rng.uniform(0.35, 0.6) * (
                1.6 if sub in ("cervix_pab", "cervix_mep", "cervix_dyk") else 1
            )
            target = orange if rng.random() < orange_p else green
            if cell is None:
                continue
            sl, a = cell
            fold = 1 + 0.25 * _noise(rng, size, 4 * s)[sl]
            target[sl] = np.maximum(target[sl], a * density * fold)
            r = rng.uniform(*nuc_r) * s
            k = 2 if sub == "cervix_koc" and rng.random() < 0.35 else 1
            for j in range(k):
                nx, ny = x + (j - (k - 1) / 2) * 2.2 * r, y
                if halo:
                    hr = rc * halo
                    hb = _blob(size, nx, ny, hr, hr * 0.8, t, irregular=0.15, rng=rng, edge=1.5)
                    _paint(target, hb, 0.9, "erase")
                    _paint(green if target is orange else orange, hb, 0.9, "erase")
                nb = _blob(size, nx, ny, r, r * rng.uniform(0.75, 1.0), t, irregular=irr * 0.8, rng=rng)
                _paint(nuc, nb, rng.uniform(0.8, 1.2) * (1.4 if sub == "cervix_dyk" else 1.0))
            if sub == "cervix_mep":  # vacuoles
                for _ in range(rng.integers(1, 4)):
                    vx, vy = x + rng.normal(0, rc / 2.5), y + rng.normal(0, rc / 2.5)
                    _paint(green, _blob(size, vx, vy, 1.8 * s, 1.8 * s), 0.8, "erase")
        nuc *= np.clip(1 + 0.3 * _noise(rng, size, 1.2 * s), 0.3, 2)
        bg = np.array([0.95, 0.95, 0.97], np.float32)
        return _brightfield(
            rng, [(green, LIGHT_GREEN, 0.8), (orange, ORANGE_G, 0.8), (nuc, HEMATOXYLIN, 1.3)], bg
        )

    return render


# ==== H&E histopathology =============================================================================


def _stroma(rng: np.random.Generator, size: int, level: float = 0.45) -> Array:
    """Fibrous eosinophilic stroma: streaky noise at a random orientation."""
    fib = _noise(rng, size, 2.0 * size / 128, aniso=5.0)
    if rng.random() < 0.5:
        fib = fib.T
    return np.clip(level * (1 + 0.35 * fib + 0.15 * _noise(rng, size, 12 * size / 128)), 0.05, None)


def _he(rng: np.random.Generator, hema: Array, eosin: Array) -> Array:
    hema = hema * np.clip(1 + 0.25 * _noise(rng, hema.shape[0], 1.1 * hema.shape[0] / 128), 0.3, 2.0)
    # Total stain per image is drawn independently of the class (as staining batches vary), so a crowded
    # malignant field is not simply darker: the class shows in morphology, not in mean colour.
    hema *= rng.uniform(0.18, 0.34) / (hema.mean() + 1e-6)
    eosin = eosin * (rng.uniform(0.28, 0.45) / (eosin.mean() + 1e-6))
    return _brightfield(rng, [(eosin, EOSIN, 0.7), (hema, HEMATOXYLIN, 1.15)], np.array([0.96, 0.94, 0.96]))


def _glands(
    rng: np.random.Generator,
    size: int,
    hema: Array,
    eosin: Array,
    centres: Array,
    radius: tuple[float, float],
    *,
    irregular: float,
    lumen: float,
    nuc_r: tuple[float, float],
    spacing: float,
    layers: int = 1,
    goblets: bool = False,
    debris: bool = False,
    nuc_irregular: float = 0.05,
    elong: tuple[float, float] = (1.0, 1.3),
) -> None:
    """Glands: an epithelial ring of nuclei around a clear lumen (optionally goblet cells / necrosis)."""
    s = size / 128
    reach = radius[1] * s
    inside = np.all((centres > -reach) & (centres < size + reach), axis=1)
    for cx, cy in centres[inside]:
        rx = rng.uniform(*radius) * s
        ry = rx * rng.uniform(0.65, 1.0)
        t = rng.uniform(0, np.pi)
        g = _blob(size, cx, cy, rx, ry, t, irregular=irregular, rng=rng, edge=1.5)
        _paint(eosin, g, 0.55, "over")
        lb = _blob(size, cx, cy, rx * lumen, ry * lumen, t, irregular=irregular, rng=rng, edge=1.2)
        _paint(eosin, lb, 0.95, "erase")
        _paint(hema, lb, 1.0, "erase")
        if debris and lb is not None:  # dirty necrosis: karyorrhectic fragments in pink debris
            k = int(rng.integers(2, 6))
            pts = np.stack([cx + rng.normal(0, rx * lumen / 3, k), cy + rng.normal(0, ry * lumen / 3, k)], 1)
            _nuclei(rng, hema, pts, (0.8 * s, 1.6 * s), value=(0.4, 0.9))
            _paint(eosin, lb, 0.3, "max")
        for layer in range(layers):
            f = 1.0 - (1 - lumen) * (0.35 + 0.3 * layer / max(layers, 1))
            n = max(6, int(2 * np.pi * ((rx + ry) / 2) * f / (spacing * s)))
            pts, normal = _ring_points(cx, cy, rx * f, ry * f, t, n, rng)
            pts = pts + rng.normal(0, 0.6 * s * (1 + layer), pts.shape).astype(np.float32)
            _nuclei(
                rng,
                hema,
                pts,
                (nuc_r[0] * s, nuc_r[1] * s),
                elong=elong,
                irregular=nuc_irregular,
                theta=normal if elong[1] > 1.4 else None,
            )
        if goblets:
            n = max(3, int(2 * np.pi * rx / (9 * s)))
            pts, _ = _ring_points(cx, cy, rx * (0.5 + lumen / 2), ry * (0.5 + lumen / 2), t, n, rng)
            for x, y in pts:
                gb = _blob(size, x, y, 2.4 * s, 2.0 * s, rng.uniform(0, np.pi), edge=0.8)
                _paint(eosin, gb, 0.85, "erase")
                _paint(hema, gb, 0.9, "erase")


def _scatter(rng, size, hema, spacing, prob, r, mask=None, **kw) -> None:
    pts = _grid_points(rng, size, spacing * size / 128, 0.45)
    m = np.ones((size, size), np.float32) if mask is None else mask
    s = size / 128
    _nuclei(rng, hema, _select(rng, pts, m, prob), (r[0] * s, r[1] * s), **kw)


def _mask_of(size: int, blobs: list) -> Array:
    m = np.zeros((size, size), np.float32)
    for b in blobs:
        _paint(m, b, 1.0)
    return m


def _keratin_pearl(rng, size, eosin, hema, x, y, r) -> None:
    for k, f in enumerate(np.linspace(1.0, 0.25, 5)):
        _paint(
            eosin, _blob(size, x, y, r * f, r * f * 0.8, 0.3, edge=1.0), 0.95 if k % 2 == 0 else 0.6, "over"
        )
    _paint(hema, _blob(size, x, y, r, r * 0.8, 0.3), 0.95, "erase")


def _tissue(sub: str) -> Renderer:
    def render(rng: np.random.Generator, size: int) -> Array:
        s = size / 128
        hema = np.zeros((size, size), np.float32)
        eosin = _stroma(rng, size)
        if sub == "breast_benign":
            centres = rng.uniform(0.15, 0.85, (rng.integers(2, 5), 2)) * size
            _glands(
                rng,
                size,
                hema,
                eosin,
                centres,
                (14, 24),
                irregular=0.08,
                lumen=0.45,
                nuc_r=(1.8, 2.4),
                spacing=5.0,
                layers=2,
            )
            _scatter(rng, size, hema, 11, 0.5, (2.6, 3.4), elong=(2.2, 3.0), theta=rng.uniform(0, np.pi))
        elif sub == "breast_malignant":
            nests = [
                _blob(
                    size,
                    *rng.uniform(0.1, 0.9, 2) * size,
                    *rng.uniform(16, 30, 2) * s,
                    rng.uniform(0, np.pi),
                    irregular=0.3,
                    rng=rng,
                    edge=2,
                )
                for _ in range(rng.integers(3, 6))
            ]
            m = _mask_of(size, nests)
            eosin = eosin * (1 - 0.3 * m) + 0.25 * m
            _scatter(
                rng,
                size,
                hema,
                6.5,
                0.9,
                (2.6, 4.8),
                mask=m,
                irregular=0.25,
                elong=(1.0, 1.5),
                value=(0.9, 1.4),
            )
            _scatter(rng, size, hema, 14, 0.3, (2.4, 3.2), elong=(2.0, 2.8), mask=1 - m)
        elif sub == "colon_bnt":
            _scatter(rng, size, hema, 7, 0.3, (1.3, 1.7), value=(0.9, 1.2))  # lamina propria cells
            centres = _grid_points(rng, size, 30 * s, 0.15)
            _glands(
                rng,
                size,
                hema,
                eosin,
                centres,
                (11, 13),
                irregular=0.05,
                lumen=0.35,
                nuc_r=(1.5, 2.0),
                spacing=4.2,
                goblets=True,
                elong=(1.1, 1.4),
            )
        elif sub == "colon_aca":
            centres = _grid_points(rng, size, 26 * s, 0.35)
            _glands(
                rng,
                size,
                hema,
                eosin,
                centres,
                (12, 17),
                irregular=0.3,
                lumen=0.4,
                nuc_r=(1.7, 2.3),
                spacing=3.6,
                layers=2,
                debris=True,
                nuc_irregular=0.12,
                elong=(1.7, 2.4),
            )
        elif sub == "lung_bnt":
            eosin *= 0.5
            pts = _grid_points(rng, size, 22 * s, 0.3)
            for x, y in pts:
                r = rng.uniform(8, 11) * s
                _paint(
                    eosin,
                    _blob(
                        size,
                        x,
                        y,
                        r,
                        r * rng.uniform(0.8, 1),
                        rng.uniform(0, 3),
                        irregular=0.12,
                        rng=rng,
                        edge=1.5,
                    ),
                    0.95,
                    "erase",
                )
            septa = np.clip(eosin / 0.25, 0, 1)
            _scatter(rng, size, hema, 7, 0.35, (1.6, 2.2), mask=septa, elong=(1.6, 2.4))
            rbc = _select(rng, _grid_points(rng, size, 6 * s), septa, 0.15)
            _nuclei(rng, eosin, rbc, (1.4 * s, 1.9 * s), value=(0.9, 1.2))
        elif sub == "lung_aca":
            centres = _grid_points(rng, size, 24 * s, 0.3)
            centres = centres[rng.random(len(centres)) < 0.8]
            _glands(
                rng,
                size,
                hema,
                eosin,
                centres,
                (8, 12),
                irregular=0.15,
                lumen=0.45,
                nuc_r=(2.2, 3.0),
                spacing=4.0,
                nuc_irregular=0.1,
                elong=(1.1, 1.5),
            )
            _scatter(rng, size, hema, 9, 0.3, (1.3, 1.8))
        elif sub in ("lung_scc", "oral_scc"):
            k = rng.integers(2, 4) if sub == "lung_scc" else rng.integers(3, 6)
            big = 36 if sub == "lung_scc" else 20
            nests = [
                _blob(
                    size,
                    *rng.uniform(0.15, 0.85, 2) * size,
                    *rng.uniform(big * 0.6, big, 2) * s,
                    rng.uniform(0, np.pi),
                    irregular=0.25,
                    rng=rng,
                    edge=2,
                )
                for _ in range(k)
            ]
            m = _mask_of(size, nests)
            eosin = eosin * (1 - m) + m * (0.6 + 0.1 * _noise(rng, size, 6 * s))
            _scatter(rng, size, hema, 9, 0.95, (2.6, 4.2), mask=m, irregular=0.18, value=(0.8, 1.3))
            for b in nests[: rng.integers(1, 3)]:
                sl, a = b
                ys, xs = np.nonzero(a > 0.9)
                if len(xs):
                    j = rng.integers(len(xs))
                    _keratin_pearl(rng, size, eosin, hema, xs[j] + sl[1].start, ys[j] + sl[0].start, 7 * s)
            if sub == "oral_scc":  # inflammatory infiltrate around the islands
                _scatter(rng, size, hema, 4.5, 0.6, (1.1, 1.5), mask=1 - m, value=(1.0, 1.3))
        elif sub == "lymph_cll":
            eosin *= 0.4
            _scatter(rng, size, hema, 5.5, 0.95, (2.0, 2.5), value=(1.0, 1.3))
            for _ in range(rng.integers(1, 3)):
                pc = _mask_of(
                    size,
                    [
                        _blob(
                            size,
                            *rng.uniform(0.2, 0.8, 2) * size,
                            22 * s,
                            18 * s,
                            irregular=0.2,
                            rng=rng,
                            edge=4,
                        )
                    ],
                )
                hema *= 1 - 0.8 * pc
                _scatter(rng, size, hema, 8, 0.9, (3.2, 4.0), mask=pc, value=(0.5, 0.7))
        elif sub == "lymph_fl":
            eosin *= 0.4
            fol = [
                _blob(
                    size,
                    *rng.uniform(0.1, 0.9, 2) * size,
                    *rng.uniform(24, 38, 2) * s,
                    rng.uniform(0, 3),
                    irregular=0.12,
                    rng=rng,
                    edge=4,
                )
                for _ in range(rng.integers(1, 3))
            ]
            m = _mask_of(size, fol)
            _scatter(rng, size, hema, 5.2, 0.95, (1.9, 2.4), mask=1 - m, value=(1.0, 1.3))
            _scatter(rng, size, hema, 7.5, 0.75, (2.4, 3.4), mask=m, irregular=0.3, elong=(1.3, 1.8))
            _scatter(rng, size, hema, 13, 0.6, (4.0, 5.0), mask=m, value=(0.45, 0.6))
        elif sub == "lymph_mcl":
            eosin *= 0.45
            _scatter(rng, size, hema, 6.3, 0.92, (2.4, 3.0), irregular=0.22, value=(0.85, 1.15))
            pts = _grid_points(rng, size, 30 * s, 0.4)
            for x, y in pts[rng.random(len(pts)) < 0.45]:  # pink histiocytes
                hb = _blob(size, x, y, 6 * s, 4.5 * s, rng.uniform(0, 3), irregular=0.1, rng=rng)
                _paint(hema, hb, 0.9, "erase")
                _paint(eosin, hb, 0.75, "max")
                _paint(hema, _blob(size, x, y, 2.4 * s, 1.6 * s, rng.uniform(0, 3)), 0.45)
        elif sub in ("oral_normal",):
            yy = np.arange(size, dtype=np.float32)[:, None]
            xx = np.arange(size, dtype=np.float32)[None, :]
            wave = rng.uniform(0.45, 0.6) * size + 8 * s * np.sin(
                xx / (rng.uniform(10, 16) * s) + rng.uniform(0, 6)
            )
            epi = np.clip((wave - yy) / 2 + 0.5, 0, 1)  # epithelium above the wavy basement membrane
            ker = np.clip((rng.uniform(0.08, 0.2) * size - yy) / 2 + 0.5, 0, 1)  # keratin at the surface
            eosin = eosin * (1 - epi) + epi * (0.42 + 0.05 * _noise(rng, size, 5 * s)) + 0.5 * ker
            depth = np.clip((wave - yy) / (wave - 0.0 + 1e-3), 0, 1)  # 0 at basal layer, 1 at surface
            basal = epi * (depth < 0.15) * (1 - ker)
            spinous = epi * (depth >= 0.15) * (1 - ker)
            _scatter(rng, size, hema, 4.2, 0.95, (1.6, 2.1), mask=basal, value=(1.0, 1.3))
            _scatter(rng, size, hema, 9, 0.95, (2.2, 2.8), mask=spinous, elong=(1.0, 1.3))
            _scatter(rng, size, hema, 13, 0.4, (2.4, 3.2), mask=1 - epi, elong=(2.0, 3.0))
        return _he(rng, hema, eosin)

    return render


# ==== MRI (brain) =====================================================================================


def _brain_mri(sub: str) -> Renderer:
    def render(rng: np.random.Generator, size: int) -> Array:
        s = size / 128
        img = np.zeros((size, size), np.float32)
        cx, cy = size / 2 + rng.normal(0, 5 * s, 2)
        rx = rng.uniform(38, 52) * s
        ry = min(rx * rng.uniform(1.0, 1.25), 60 * s)
        t = rng.normal(0, 0.18)
        _paint(img, _blob(size, cx, cy, rx, ry, t, edge=1.5), rng.uniform(0.5, 0.85), "over")  # scalp
        skull = rng.uniform(0.92, 0.96)
        _paint(img, _blob(size, cx, cy, rx * skull, ry * skull, t, edge=1.2), 0.12, "over")
        brain = _blob(
            size, cx, cy, rx * (skull - 0.06), ry * (skull - 0.05), t, irregular=0.03, rng=rng, edge=1.2
        )
        gyri = (
            rng.uniform(0.36, 0.48)
            + rng.uniform(0.04, 0.1) * np.tanh(2 * _noise(rng, size, rng.uniform(2.5, 4.5) * s))
            + rng.uniform(0.02, 0.07) * _noise(rng, size, rng.uniform(8, 20) * s)
        )
        sl, a = brain
        img[sl] = img[sl] * (1 - a) + a * gyri[sl]
        if rng.random() < 0.8:  # lateral ventricles (absent at some slice levels)
            w, h = rng.uniform(1.5, 4.5) * s, rng.uniform(6, 14) * s
            dy = rng.uniform(-8, 4) * s
            for side in (-1, 1):
                vb = _blob(
                    size, cx + side * (w + 2 * s), cy + dy, w, h, t + side * rng.uniform(0.1, 0.4), edge=1.5
                )
                _paint(img, vb, 0.1, "over")
        if sub == "brain_glioma":
            ang = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0.25, 0.5)
            x, y = cx + d * rx * math.cos(ang), cy + d * ry * math.sin(ang)
            r = rng.uniform(8, 14) * s
            _paint(img, _blob(size, x, y, r * 1.7, r * 1.5, ang, irregular=0.3, rng=rng, edge=3), 0.3, "over")
            _paint(img, _blob(size, x, y, r, r * 0.85, ang, irregular=0.35, rng=rng, edge=1.5), 0.85, "over")
            core = _blob(size, x, y, r * 0.6, r * 0.5, ang, irregular=0.4, rng=rng, edge=1.5)
            _paint(img, core, 0.22, "over")
        elif sub == "brain_menin":
            ang = rng.uniform(0, 2 * np.pi)
            bx, by = cx + 0.86 * rx * math.cos(ang), cy + 0.86 * ry * math.sin(ang)
            r = rng.uniform(8, 13) * s
            x, y = bx - 0.6 * r * math.cos(ang), by - 0.6 * r * math.sin(ang)
            _paint(img, _blob(size, bx, by, 2 * s, r * 1.6, ang, edge=1.2), 0.75, "over")  # dural tail
            _paint(img, _blob(size, x, y, r, r * 0.9, ang, irregular=0.05, rng=rng, edge=1.2), 0.88, "over")
        else:  # pituitary: small bright mass at the sella, centre-bottom
            x, y = cx + rng.normal(0, 2 * s), cy + rng.uniform(0.2, 0.38) * ry
            r = rng.uniform(5, 9) * s
            _paint(
                img, _blob(size, x, y + 3 * r / 4, r * 1.6, r * 0.6, edge=1.5), 0.08, "over"
            )  # sphenoid sinus
            _paint(img, _blob(size, x, y, r, r * 0.85, irregular=0.08, rng=rng, edge=1.2), 0.85, "over")
        img = img + np.abs(rng.normal(0, 0.025, img.shape)).astype(np.float32)  # Rician-like floor
        img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25) * rng.uniform(0.8, 1.2) + rng.normal(0, 0.03)
        return np.repeat(img[..., None], 3, axis=2)

    return render


# ==== CT (kidney) =====================================================================================


def _kidney_ct(sub: str) -> Renderer:
    def render(rng: np.random.Generator, size: int) -> Array:
        s = size / 128
        img = np.full((size, size), 0.03, np.float32)
        cx, cy = size / 2 + rng.normal(0, 5 * s, 2)
        rx = rng.uniform(46, 62) * s
        ry = rx * rng.uniform(0.65, 0.85)
        _paint(img, _blob(size, cx, cy, rx, ry, edge=1.2), 0.28, "over")  # subcutaneous fat
        soft = rng.uniform(0.4, 0.5) + 0.03 * _noise(rng, size, 6 * s)
        fat = rng.uniform(0.85, 0.93)
        b = _blob(size, cx, cy, rx * fat, ry * fat, irregular=0.04, rng=rng, edge=2)
        sl, a = b
        img[sl] = img[sl] * (1 - a) + a * soft[sl]
        lr = rng.uniform(0.3, 0.5)
        liver = _blob(
            size, cx - 0.45 * rx, cy - 0.3 * ry, lr * rx, 0.9 * lr * ry, rng.uniform(0, 0.6), edge=2
        )
        _paint(img, liver, rng.uniform(0.5, 0.6), "over")
        for _ in range(rng.integers(3, 7)):  # bowel loops with gas
            x, y = cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.7, 0.0) * ry
            r = rng.uniform(4, 7) * s
            _paint(img, _blob(size, x, y, r, r, edge=1.2), 0.5, "over")
            if rng.random() < 0.6:
                _paint(img, _blob(size, x, y - r / 3, r / 2, r / 3, edge=1), 0.04, "over")
        sx, sy = cx, cy + 0.55 * ry  # spine and aorta
        _paint(img, _blob(size, sx, sy, 8 * s, 7 * s, edge=1.2), 0.95, "over")
        _paint(img, _blob(size, sx, sy, 5.5 * s, 4.5 * s, edge=1.2), 0.6, "over")
        _paint(img, _blob(size, sx, sy + 10 * s, 3 * s, 3 * s, edge=1), 0.3, "over")
        _paint(img, _blob(size, sx - 2 * s, sy - 12 * s, 4 * s, 4 * s, edge=1), 0.8, "over")
        tumour_side = rng.choice([-1, 1])
        for side in (-1, 1):
            kx, ky = cx + side * rng.uniform(0.38, 0.46) * rx, cy + rng.uniform(0.2, 0.35) * ry
            kt = side * rng.uniform(0.2, 0.5)
            krx, kry = rng.uniform(8, 10) * s, rng.uniform(12, 15) * s
            _paint(img, _blob(size, kx, ky, krx, kry, kt, edge=1.2), 0.85, "over")  # cortex
            _paint(img, _blob(size, kx - side * 2 * s, ky, krx * 0.5, kry * 0.6, kt, edge=1.5), 0.62, "over")
            _paint(
                img, _blob(size, kx - side * krx, ky, krx * 0.35, kry * 0.3, kt, edge=1), 0.35, "over"
            )  # hilum
            if sub == "kidney_tumor" and side == tumour_side:
                ang = rng.uniform(0, 2 * np.pi)
                d = rng.uniform(0.3, 0.9)
                tx, ty = kx + d * krx * math.cos(ang), ky + d * kry * math.sin(ang)
                r = rng.uniform(6, 10) * s
                lesion = _blob(
                    size, tx, ty, r, r * rng.uniform(0.8, 1), ang, irregular=0.12, rng=rng, edge=1.2
                )
                level = rng.choice([0.5, 0.7])
                _paint(img, lesion, level, "over")
                if lesion is not None:
                    sl, a = lesion
                    img[sl] += a * 0.08 * _noise(rng, size, 2 * s)[sl]  # heterogeneous enhancement
        img = gaussian_filter(img, 0.6 * s)
        img = img + rng.normal(0, 0.03, img.shape).astype(np.float32)  # CT noise
        img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25) * rng.uniform(0.8, 1.2) + rng.normal(0, 0.03)
        return np.repeat(img[..., None], 3, axis=2)

    return render


# ==== registry ========================================================================================

_MODALITY_RENDERERS: dict[str, Callable[[str], Renderer]] = {
    "blood smear": _blood_smear,
    "Pap cytology": _pap,
    "H&E histopathology": _tissue,
    "MRI": _brain_mri,
    "CT": _kidney_ct,
}


def renderer_for(sub: str, taxonomy: Taxonomy = MULTI_CANCER) -> Renderer:
    """The image renderer of one sub-class (by its modality in the taxonomy)."""
    info = taxonomy.sub(sub)
    known = _KNOWN_SUBS.get(info.modality, set())
    if sub not in known:
        raise TaxonomyError(
            f"The demo generator has no renderer for sub-class {sub!r} (modality {info.modality!r}); it draws "
            f"only the Multi Cancer sub-classes. Generate the demo without --taxonomy, or bring real images."
        )
    return _MODALITY_RENDERERS[info.modality](sub)


_KNOWN_SUBS = {
    "blood smear": set(_BLAST),
    "Pap cytology": set(_PAP),
    "MRI": {"brain_glioma", "brain_menin", "brain_tumor"},
    "CT": {"kidney_normal", "kidney_tumor"},
    "H&E histopathology": {
        "breast_benign", "breast_malignant", "colon_aca", "colon_bnt", "lung_aca", "lung_bnt", "lung_scc",
        "lymph_cll", "lymph_fl", "lymph_mcl", "oral_normal", "oral_scc",
    },
}  # fmt: skip


def render_image(sub: str, rng: np.random.Generator, size: int, taxonomy: Taxonomy = MULTI_CANCER) -> Array:
    """One synthetic image of `sub` as uint8 HxWx3 (microscopy gets a random rotation/flip)."""
    rgb = renderer_for(sub, taxonomy)(rng, size)
    out = np.clip(rgb * 255 + rng.normal(0, 2.0, rgb.shape), 0, 255).astype(np.uint8)
    if taxonomy.sub(sub).dihedral:
        out = _dihedral(out, int(rng.integers(8)))
    blur = rng.uniform(0.2, 0.7) * size / 128
    return np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(blur)))


# ==== planted near-duplicates ===========================================================================


def _dihedral(img: Array, k: int) -> Array:
    """Dihedral transform k in 0..7: rotate by 90*(k%4), then transpose when k >= 4."""
    out = np.rot90(img, k % 4)
    return np.ascontiguousarray(out.transpose(1, 0, 2) if k >= 4 else out)


def augment_copy(img: Array, rng: np.random.Generator, dihedral: bool) -> tuple[Array, dict]:
    """A Keras-style augmented copy: rot90/flip (if allowed), brightness +-10%, zoom <= 4% with a shift."""
    ops: dict = {}
    if dihedral:
        k = int(rng.integers(1, 8))
        img = _dihedral(img, k)
        ops["dihedral"] = k
    size = img.shape[0]
    zoom = float(rng.uniform(1.0, MAX_COPY_ZOOM))
    crop = size / zoom
    ox, oy = rng.uniform(0, size - crop, 2) if zoom > 1 else (0.0, 0.0)
    box = (float(ox), float(oy), float(ox + crop), float(oy + crop))
    img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR, box=box))
    gain = float(rng.uniform(2 - MAX_COPY_GAIN, MAX_COPY_GAIN))
    img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    ops.update(zoom=round(zoom, 4), brightness=round(gain, 4))
    return img, ops


# ==== the dataset ===============================================================================


def _prepare_out_dir(out: Path, taxonomy: Taxonomy) -> None:
    """Refuse to write into a folder holding anything but a previous synthetic dataset."""
    if out.exists() and not out.is_dir():
        raise DatasetLayoutError(f"Output {out} exists and is a file; pass a folder for the demo dataset.")
    if out.is_dir() and any(out.iterdir()):
        if not (out / SYNTH_MANIFEST_FILE).is_file():
            raise DatasetLayoutError(
                f"Output folder {out} is not empty and holds no {SYNTH_MANIFEST_FILE}, so it is not a previous "
                "demo dataset; refusing to overwrite real data. Pass an empty or new folder."
            )
        for main in taxonomy.main_names:  # regenerate from scratch
            if (out / main).is_dir():
                shutil.rmtree(out / main)
        (out / SYNTH_MANIFEST_FILE).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _split_budget(rng: np.random.Generator, per_class: int, groups: int) -> list[int]:
    """Copies per planted group in one class (1-4 each), keeping at least half the class as originals."""
    budget = per_class // 2
    groups = min(groups, budget)
    sizes = []
    for g in range(groups):
        room = budget - sum(sizes) - (groups - g - 1)  # leave one copy for each later group
        sizes.append(int(min(rng.integers(1, MAX_COPIES_PER_GROUP + 1), room)))
    return sizes


def generate_demo_dataset(
    out_dir: str | Path,
    *,
    per_class: int = 50,
    size: int = 128,
    seed: int = 0,
    taxonomy: Taxonomy = MULTI_CANCER,
    duplicate_groups: int | None = None,
    progress: bool = True,
) -> SynthResult:
    """Write the demo dataset `<out>/<Main>/<sub>/<sub>_<n>.jpg` and its hidden manifest.

    per_class counts every file of a sub-class, planted copies included. duplicate_groups is the total
    number of near-duplicate groups (default 2 per sub-class), spread over the sub-classes in turn; each
    holds an original and 1-4 augmented copies. Same arguments -> the same bytes.
    """
    from tqdm.auto import tqdm

    if per_class < 2:
        raise DatasetLayoutError(f"per_class={per_class} is too small; use at least 2 images per sub-class.")
    if not 16 <= size <= 1024:
        raise DatasetLayoutError(f"size={size} px is out of range; use 16..1024 (the real data is 512).")
    subs = taxonomy.sub_names
    for sub in subs:
        renderer_for(sub, taxonomy)  # fail before writing anything
    if duplicate_groups is None:
        duplicate_groups = DEFAULT_GROUPS_PER_CLASS * len(subs)
    if duplicate_groups < 0:
        raise DatasetLayoutError(f"duplicate_groups={duplicate_groups} must be >= 0.")
    out = Path(out_dir)
    _prepare_out_dir(out, taxonomy)
    start = time.perf_counter()
    per_sub_groups = [
        duplicate_groups // len(subs) + (i < duplicate_groups % len(subs)) for i in range(len(subs))
    ]
    planted: list[list[str]] = []
    planted_ops: list[list[dict]] = []
    counts: dict[str, int] = {}
    bar = tqdm(total=per_class * len(subs), desc="synthetic images", unit="img", disable=not progress)
    for ci, sub in enumerate(subs):
        info = taxonomy.sub(sub)
        folder = out / info.main / sub
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, ci])
        copies = _split_budget(rng, per_class, per_sub_groups[ci])
        n_orig = per_class - sum(copies)
        names = [f"{sub}_{i + 1:04d}.jpg" for i in rng.permutation(per_class)]  # copies are not adjacent
        images = []
        for j in range(n_orig):
            img = render_image(sub, np.random.default_rng([seed, ci, j]), size, taxonomy)
            images.append(img)
            Image.fromarray(img).save(folder / names[j], quality=JPEG_QUALITY)
            bar.update(1)
        k = n_orig
        for g, n_copies in enumerate(copies):
            src = g  # originals 0..len(copies)-1 get copies
            group = [f"{info.main}/{sub}/{names[src]}"]
            ops = []
            for c in range(n_copies):
                img, op = augment_copy(
                    images[src], np.random.default_rng([seed, ci, src, c, 1]), info.dihedral
                )
                Image.fromarray(img).save(folder / names[k], quality=JPEG_QUALITY)
                group.append(f"{info.main}/{sub}/{names[k]}")
                ops.append(op)
                k += 1
                bar.update(1)
            planted.append(group)
            planted_ops.append(ops)
        counts[sub] = per_class
    bar.close()
    seconds = time.perf_counter() - start
    manifest = {
        "generator": "cancernet_hf.data.synthetic",
        "version": GENERATOR_VERSION,
        "synthetic": True,
        "notice": DEMO_DATA_NOTICE,
        "taxonomy": taxonomy.name,
        "seed": seed,
        "per_class": per_class,
        "size": size,
        "num_images": per_class * len(subs),
        "planted_groups": planted,
        "planted_ops": planted_ops,
    }
    (out / SYNTH_MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    result = SynthResult(out, per_class * len(subs), planted, per_class, size, seed, seconds, counts)
    logger.info("Wrote %d synthetic images to %s in %.1fs.", result.num_images, out, seconds)
    return result


def read_synth_manifest(root: str | Path) -> dict | None:
    """The generator manifest of a synthetic dataset root, or None for real data."""
    path = Path(root) / SYNTH_MANIFEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def is_synthetic(data_dir: str | Path) -> bool:
    """True when the folder (or the folder above it) was written by the demo generator."""
    root = Path(data_dir)
    return any((p / SYNTH_MANIFEST_FILE).is_file() for p in (root, root.parent))
