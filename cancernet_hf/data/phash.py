"""Dihedral-invariant perceptual hashes and near-duplicate grouping.

The Multi Cancer images were multiplied by Keras augmentation (rot90/flips, zoom, shifts, brightness), so
copies of one original must be found before splitting. A DCT perceptual hash (pHash) is computed on the 8
rotations/flips of a 32x32 grayscale thumbnail; the 8 variants come from one DCT (a flip changes the sign
of odd frequencies, a transpose swaps the axes), so this costs one decode.

For grouping, the 1-bit quantisation of pHash throws away too much (a 4% zoom flips up to 14 of 64
bits while distinct tissue images of one class come as close as 12), so two images are compared by the
angle between their class-centred low-frequency DCT coefficients, best over the 8 rotations/flips, and
the threshold is stated in bits: 64*angle/pi, the Hamming distance a 64-bit SimHash would show.

Decoding uses JPEG draft mode (libjpeg scales by 1/2..1/8 while decoding), so a 512 px JPEG is decoded at
64 px in grayscale; the DCT blocks are computed in worker processes and cached per (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..constants import cache_dir
from ..errors import SplitError

logger = logging.getLogger(__name__)

HASH_VERSION = "dct8x8-on-32-v2"
THUMB_SIDE = 32  # the DCT input
DRAFT_SIDE = 64  # JPEG draft decode target (>= 2x the thumbnail, so BOX resampling averages noise)
DCT_SIDE = 8  # low-frequency block kept -> 64 bits
NUM_VARIANTS = 8

# Orthonormal DCT-II basis restricted to the lowest DCT_SIDE frequencies.
_n = np.arange(THUMB_SIDE)
_DCT = np.cos(np.pi * (2 * _n[None, :] + 1) * np.arange(DCT_SIDE)[:, None] / (2 * THUMB_SIDE))
_DCT *= np.sqrt(2.0 / THUMB_SIDE)
_DCT[0] /= np.sqrt(2.0)
# Flipping an axis multiplies frequency k along that axis by (-1)^k.
_ODD = (-1.0) ** np.arange(DCT_SIDE)
_FLIP_ROWS = _ODD[:, None] * np.ones(DCT_SIDE)[None, :]
_FLIP_COLS = np.ones(DCT_SIDE)[:, None] * _ODD[None, :]


# ---- one image ------------------------------------------------------------------------------------


def thumbnail(image: Image.Image | np.ndarray) -> np.ndarray:
    """32x32 float32 grayscale thumbnail of an image (any mode, any size)."""
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float32)
        if arr.ndim == 3:
            arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        image = Image.fromarray(arr, mode="F")
    elif image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F")
    elif image.mode != "L":
        image = image.convert("L")
    if image.mode != "F":
        image = image.convert("F")
    return np.asarray(image.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX), dtype=np.float32)


def dct_block(image: Image.Image | np.ndarray) -> np.ndarray:
    """The 8x8 lowest-frequency DCT coefficients of the 32x32 grayscale thumbnail (float32, flattened)."""
    return (_DCT @ thumbnail(image).astype(np.float64) @ _DCT.T).astype(np.float32).ravel()


def dihedral_variants(blocks: np.ndarray) -> np.ndarray:
    """DCT blocks (N, 64) -> the blocks of the 8 rotations/flips of each image, shape (N, 8, 64).

    Exact: flipping an axis negates the odd frequencies along it, transposing swaps the axes.
    """
    b = np.asarray(blocks, np.float32).reshape(-1, DCT_SIDE, DCT_SIDE)
    signs = [np.ones((DCT_SIDE, DCT_SIDE)), _FLIP_ROWS, _FLIP_COLS, _FLIP_ROWS * _FLIP_COLS]
    out = [x * sg.astype(np.float32) for x in (b, b.transpose(0, 2, 1)) for sg in signs]
    return np.stack(out, axis=1).reshape(len(b), NUM_VARIANTS, DCT_SIDE * DCT_SIDE)


def hashes_from_blocks(blocks: np.ndarray) -> np.ndarray:
    """Median-thresholded 64-bit pHash of each dihedral variant: (N, 64) blocks -> (N, 8) uint64."""
    v = dihedral_variants(blocks)
    bits = v > np.median(v, axis=2, keepdims=True)
    return np.packbits(bits, axis=2).view(">u8").astype(np.uint64).reshape(len(v), NUM_VARIANTS)


def dihedral_hashes(image: Image.Image | np.ndarray) -> np.ndarray:
    """The 64-bit pHash of each of the 8 rotations/flips of `image` (uint64 array of shape (8,)).

    Row i is the hash of dihedral variant i; the *set* of rows is the same for an image and any of its
    rot90/flip transforms, so `min()` of it is an exactly invariant canonical hash.
    """
    return hashes_from_blocks(dct_block(image)[None])[0]


def perceptual_hash(image: Image.Image | np.ndarray | str | Path) -> int:
    """Canonical dihedral-invariant 64-bit perceptual hash (the minimum over the 8 variants)."""
    if isinstance(image, str | Path):
        return int(hash_file(image).min())
    return int(dihedral_hashes(image).min())


def hamming(a: int | np.ndarray, b: int | np.ndarray) -> np.ndarray | int:
    """Number of differing bits between 64-bit hashes (broadcasts over arrays)."""
    out = np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))
    return int(out) if np.ndim(out) == 0 else out


def dihedral_distance(hashes_a: np.ndarray, hashes_b: np.ndarray) -> int:
    """Bits between two images' hashes, minimised over the relative rotation/flip (symmetric)."""
    a, b = np.asarray(hashes_a, np.uint64), np.asarray(hashes_b, np.uint64)
    return int(min(hamming(a.min(), b).min(), hamming(b.min(), a).min()))


def block_file(path: str | Path) -> np.ndarray:
    """The DCT block of an image file, decoded in JPEG draft mode (grayscale, >= 64 px)."""
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
        img.load()
        return dct_block(img)


def hash_file(path: str | Path) -> np.ndarray:
    """The 8 variant hashes of an image file, decoded in JPEG draft mode at reduced size."""
    return hashes_from_blocks(block_file(path)[None])[0]


def _hash_one(path: str) -> tuple[np.ndarray | None, str | None]:
    """Worker entry point: never raises, so one bad file cannot kill the pool."""
    try:
        return block_file(path), None
    except Exception as e:  # noqa: BLE001 - reported to the parent with the file name
        return None, f"{type(e).__name__}: {e}"


# ---- many files, cached ---------------------------------------------------------------------------


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cache_file(root: str | Path) -> Path:
    """Cache location for one dataset root: derived data lives in cache_dir(), never next to the data."""
    key = hashlib.sha1(f"{Path(root).resolve()}|{HASH_VERSION}".encode()).hexdigest()[:20]
    return cache_dir() / "phash" / f"{key}.npz"


def _load_cache(path: Path) -> dict[str, tuple[int, int, np.ndarray]]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["version"]) != HASH_VERSION:
                return {}
            return {
                p: (int(s), int(m), h)
                for p, s, m, h in zip(z["paths"].tolist(), z["sizes"], z["mtimes"], z["blocks"])
            }
    except Exception as e:  # noqa: BLE001 - a corrupt cache is recomputed, never fatal
        logger.warning("Ignoring unreadable hash cache %s (%s); hashes will be recomputed.", path, e)
        return {}


def _save_cache(path: Path, paths: list[str], stats: list[tuple[int, int]], blocks: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            version=np.array(HASH_VERSION),
            paths=np.array(paths, dtype=str),
            sizes=np.array([s for s, _ in stats], np.int64),
            mtimes=np.array([m for _, m in stats], np.int64),
            blocks=blocks.astype(np.float32).reshape(-1, DCT_SIDE * DCT_SIDE),
        )
        os.replace(tmp, path)
    except OSError as e:
        logger.warning("Could not write the hash cache %s (%s); the next run will hash again.", path, e)


def dct_blocks(
    root: str | Path,
    relpaths: Sequence[str],
    *,
    num_workers: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """DCT blocks (N, 64) of `root/relpath` for every relpath, reusing the cache where unchanged.

    Work is spread over `num_workers` processes (default: the usable CPUs; 0 or 1 = in this process).
    Raises SplitError naming the files that cannot be decoded.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    stats = []
    for rel in relpaths:
        st = (root / rel).stat()
        stats.append((st.st_size, st.st_mtime_ns))
    cpath = cache_file(root)
    cached = _load_cache(cpath) if use_cache else {}
    out = np.zeros((len(relpaths), DCT_SIDE * DCT_SIDE), np.float32)
    todo = []
    for i, (rel, st) in enumerate(zip(relpaths, stats)):
        hit = cached.get(rel)
        if hit is not None and (hit[0], hit[1]) == st:
            out[i] = hit[2]
        else:
            todo.append(i)
    logger.info("Hashing %d images (%d from cache %s).", len(todo), len(relpaths) - len(todo), cpath)

    if todo:
        workers = default_workers() if num_workers is None else num_workers
        workers = min(workers, max(1, len(todo) // 64))  # tiny jobs are faster without a pool
        paths = [str(root / relpaths[i]) for i in todo]
        bar = tqdm(total=len(paths), desc="perceptual hashes", unit="img", disable=not progress)
        failures = []
        if workers <= 1:
            results = (_hash_one(p) for p in paths)
            pool = None
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(workers)
            results = pool.imap(_hash_one, paths, chunksize=max(1, min(256, len(paths) // (workers * 8))))
        try:
            for i, (h, err) in zip(todo, results):
                if err is not None:
                    failures.append(f"{relpaths[i]} ({err})")
                else:
                    out[i] = h
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.close()
                pool.join()
        if failures:
            raise SplitError(
                f"Cannot hash {len(failures)} image(s) under {root}: {failures[:5]}"
                f"{' ...' if len(failures) > 5 else ''}. They were readable when scanned; the files changed "
                "or are corrupt. Run `cancernet data validate` again and split the fresh scan."
            )
        if use_cache:
            _save_cache(cpath, list(relpaths), stats, out)
    return out


# ---- near-duplicate search ------------------------------------------------------------------------


def angle_bits(similarity: np.ndarray | float) -> np.ndarray | float:
    """Cosine similarity -> angular distance in bits of 64 (the expected Hamming distance of a SimHash)."""
    return 64.0 * np.arccos(np.clip(similarity, -1.0, 1.0)) / np.pi


def _unit_variants(blocks: np.ndarray) -> np.ndarray:
    """Centred, unit-length AC coefficients of the 8 variants of each image (N, 8, 63).

    The centre is the mean over all images *and* all variants, so it is itself rotation/flip symmetric
    and centring keeps the exact dihedral invariance. Centring removes what a class shares (the head
    outline of every MRI slice), leaving what tells two images apart.
    """
    v = dihedral_variants(blocks)[:, :, 1:].astype(np.float64)  # drop DC: brightness
    v -= v.reshape(-1, v.shape[2]).mean(axis=0)
    v /= np.linalg.norm(v, axis=2, keepdims=True) + 1e-12
    return v.astype(np.float32)


def near_duplicate_pairs(blocks: np.ndarray, threshold: float, *, chunk: int = 512) -> np.ndarray:
    """Index pairs (i < j) of images within `threshold` angular bits of each other, any rotation/flip.

    Exhaustive within the given set, as blocked matrix products (BLAS): every image's canonical
    coefficients against all 8 variants of every other image.
    """
    n = len(blocks)
    if n < 2:
        return np.zeros((0, 2), np.int64)
    v = _unit_variants(blocks)
    query = v[:, 0, :]
    keys = v.reshape(n * NUM_VARIANTS, -1)
    min_sim = float(np.cos(np.pi * threshold / 64.0))
    found = []
    for s in range(0, n, chunk):
        sim = (query[s : s + chunk] @ keys.T).reshape(-1, n, NUM_VARIANTS).max(axis=2)
        qi, kj = np.nonzero(sim >= min_sim)
        found.append(np.stack([qi + s, kj], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)


def group_near_duplicates(blocks: np.ndarray, classes: Sequence[str], threshold: float) -> np.ndarray:
    """Group id per image: connected components of near-duplicate links, only within the same class.

    Copies of an original carry its label, so links never cross sub-classes; a cross-class collision
    (e.g. two almost blank slides) must not merge classes and break stratification. Ids are numbered in
    order of each group's first image.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    blocks = np.asarray(blocks, np.float32).reshape(-1, DCT_SIDE * DCT_SIDE)
    classes = np.asarray(classes)
    n = len(blocks)
    edges = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        p = near_duplicate_pairs(blocks[idx], threshold)
        if len(p):
            edges.append(idx[p])
    e = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(e), np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    # Renumber by first occurrence so ids do not depend on scipy's internals.
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[comp]
