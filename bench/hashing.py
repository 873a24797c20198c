"""Split hashing: images/s of the near-duplicate grouping that makes the leakage-aware split.

python -m bench.hashing [--smoke]

Contenders on the same 512 px JPEGs (cache off): helper B's `dct_blocks` (JPEG draft decode to 64 px
grayscale) in one process and with 2 worker processes, against the same DCT block from a full RGB decode
(what a plain `Image.open(...).convert("L")` pHash would pay). Then the grouping itself
(`group_near_duplicates`: all-pairs over the 8 rotations/flips, per class) on the hashed blocks, tiled up
to a dataset-sized count so its quadratic cost shows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from PIL import Image

from .common import (
    image_files,
    interleaved,
    load_average,
    machine_line,
    print_table,
    run_cli,
    save_results,
    synthetic_jpegs,
)

logger = logging.getLogger(__name__)


def run(smoke: bool = False) -> dict[str, Any]:
    from cancernet_hf.data.phash import dct_block, dct_blocks, group_near_duplicates
    from cancernet_hf.data.splits import DEFAULT_THRESHOLD

    print(machine_line())
    root = synthetic_jpegs(per_class=2 if smoke else 3, size=64 if smoke else 512)
    files = image_files(root)
    rel = [p.relative_to(root).as_posix() for p in files]
    classes = [p.parent.name for p in files]

    def draft(workers: int):
        def call() -> None:
            dct_blocks(root, rel, num_workers=workers, use_cache=False, progress=False)

        return call

    def full_decode() -> None:
        for path in files:
            with Image.open(path) as image:
                dct_block(image.convert("L"))

    contenders = {"draft decode, 1 process": draft(1), "full decode, 1 process": full_decode}
    counts = dict.fromkeys(contenders, len(files))
    if not smoke:
        # dct_blocks refuses a pool below 64 files per worker: hash the list repeated to >= 128 files.
        repeated = rel * max(1, -(-128 // len(rel)))
        contenders["draft decode, 2 processes"] = lambda: dct_blocks(
            root, repeated, num_workers=2, use_cache=False, progress=False
        )
        counts["draft decode, 2 processes"] = len(repeated)
    times = interleaved(contenders, rounds=1 if smoke else 3, warmup=1)
    ips = {k: counts[k] / t for k, t in times.items()}

    blocks = dct_blocks(root, rel, num_workers=1, use_cache=False, progress=False)
    group_near_duplicates(blocks, classes, DEFAULT_THRESHOLD)  # warm-up: scipy's import and first call
    group_rows = []
    for copies in (1,) if smoke else (1, 10, 40):
        # Tile the hashed blocks (with a little noise so they are not exact copies) to a larger set.
        rng = np.random.default_rng(0)
        tiled = np.concatenate([blocks + rng.normal(0, 1e-3, blocks.shape) for _ in range(copies)])
        tiled_classes = classes * copies
        start = time.perf_counter()
        groups = group_near_duplicates(tiled.astype(np.float32), tiled_classes, DEFAULT_THRESHOLD)
        seconds = time.perf_counter() - start
        group_rows.append([len(tiled), seconds, len(tiled) / seconds, int(groups.max()) + 1])

    base = ips["full decode, 1 process"]
    rows = [[k, v, v / base] for k, v in ips.items()]
    print_table(f"Perceptual hashing, {len(files)} JPEGs", ["contender", "img/s", "× full decode"], rows)
    print_table(
        f"Grouping (threshold {DEFAULT_THRESHOLD} bits)", ["images", "seconds", "img/s", "groups"], group_rows
    )
    notes = [
        f"Hashing decodes JPEGs in draft mode straight to 64 px grayscale: "
        f"{ips['draft decode, 1 process']:.0f} img/s in one process against {base:.0f} img/s with a full RGB "
        f"decode ({ips['draft decode, 1 process'] / base:.1f}×). The all-pairs grouping is a blocked matrix "
        f"product per class; at {group_rows[-1][0]} images it takes {group_rows[-1][1]:.2f} s, so hashing "
        "(decoding) dominates and results are cached per file between runs.",
    ]
    if "draft decode, 2 processes" in ips:
        notes.append(
            f"Two worker processes give {ips['draft decode, 2 processes']:.0f} img/s "
            f"({ips['draft decode, 2 processes'] / ips['draft decode, 1 process']:.2f}× one process) on "
            f"{counts['draft decode, 2 processes']} files: pool start-up is a share of a job this small, and "
            "the two cores were shared with other work at the time (see the load average)."
        )
    for note in notes:
        print("\n" + note)
    payload = {
        "title": "Split hashing: near-duplicate grouping",
        "img_per_s": ips,
        "grouping": [dict(zip(("images", "seconds", "img_per_s", "groups"), r)) for r in group_rows],
        "load_avg": load_average(),
        "tables": [
            {
                "title": f"Perceptual hashing of {len(files)} synthetic {64 if smoke else 512} px JPEGs (cache off)",
                "header": ["contender", "img/s", "× full decode"],
                "rows": rows,
            },
            {
                "title": f"Grouping, threshold {DEFAULT_THRESHOLD} bits (blocks tiled to larger counts)",
                "header": ["images", "seconds", "img/s", "groups"],
                "rows": group_rows,
            },
        ],
        "notes": notes,
        "smoke": smoke,
    }
    save_results("hashing" if not smoke else "hashing_smoke", payload)
    return payload


if __name__ == "__main__":
    run_cli(run, __doc__)
