"""Data path: 512 px JPEG -> 224 px training tensor, per core, and DataLoader throughput against training.

python -m bench.data_path [--smoke]

Per core (torch on one thread, one process), contenders timed interleaved on the same files:
- ours, draft: `build_transforms(train=True)` on undecoded `{"path"}` items (`prepare_dataset`'s
  `Image(decode=False)`): libjpeg decodes at 1/2 scale (256 px >= what a 224 px crop needs);
- ours, decoded by `datasets`: the same transform on images a `datasets.Image()` column already decoded
  in full (`Image.open(...).load()`), which is what a plain `set_transform` gets;
- naive: full decode + a plain torchvision pipeline (RandomResizedCrop, flip, ColorJitter, to float,
  normalise) — fewer augmentations than ours (no dihedral moves, no stain jitter).

Then the input pipeline against the consumer (main process on one torch thread): DataLoader samples/s
with 0 and 2 workers for the tiny preset's training transforms (64 px), the tiny preset's training step
alone on ready tensors, and that step fed by the 2-worker loader.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
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

TINY = "vit-tiny"
FULL_SIZE_MEMBER = "vit-small"  # a 224 px processor


def _labels(paths: Sequence[Path]) -> list[int]:
    from cancernet_hf.taxonomy import MULTI_CANCER

    return [MULTI_CANCER.label2id[p.parent.name] for p in paths]


def naive_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable[[Path], torch.Tensor]:
    """What a notebook does: full decode, then a torchvision v2 pipeline."""
    from torchvision.transforms import v2

    pipeline = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.2, 0.2, 0.2, 0.02),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )

    def call(path: Path) -> torch.Tensor:
        with Image.open(path) as image:
            return pipeline(image.convert("RGB"))

    return call


def per_core(paths: Sequence[Path], rounds: int) -> dict[str, Any]:
    """Images/s on one thread for the three 512 -> 224 contenders, plus the decode alone."""
    from torchvision.transforms import v2

    from cancernet_hf.data.transforms import build_transforms, processor_geometry
    from cancernet_hf.models.presets import PRESETS

    processor = PRESETS[FULL_SIZE_MEMBER].make_processor()
    geometry = processor_geometry(processor)
    # The library default: draft decode at the target size + one-matrix colour jitter.
    ours_draft = build_transforms(processor, train=True)
    ours_full = build_transforms(processor, train=True, draft=False)
    # The previous default, kept as a contender: torchvision's HSV colour jitter on uint8 tensors and a
    # decode big enough that the smallest crop keeps full detail (full 512 px decode for 224 px).
    ours_tv = build_transforms(processor, train=True)
    ours_tv.augment.colour = v2.ColorJitter(0.2, 0.2, 0.2, 0.02)
    ours_tv.draft_size = math.ceil(geometry.height / math.sqrt(0.35))
    naive = naive_transform(geometry.height, geometry.mean, geometry.std)
    labels = _labels(paths)

    def draft() -> None:
        for path, label in zip(paths, labels):
            ours_draft({"image": [{"path": str(path), "bytes": None}], "label": [label]})

    def torchvision_colour() -> None:
        for path, label in zip(paths, labels):
            ours_tv({"image": [{"path": str(path), "bytes": None}], "label": [label]})

    def decoded_by_datasets() -> None:
        for path, label in zip(paths, labels):
            image = Image.open(path)
            image.load()  # what datasets.Image().decode_example does before the transform sees it
            ours_full({"image": [image], "label": [label]})

    def plain() -> None:
        for path in paths:
            naive(path)

    def decode_full() -> None:
        for path in paths:
            with Image.open(path) as image:
                image.load()

    def decode_draft() -> None:
        for path in paths:
            with Image.open(path) as image:
                image.draft("RGB", (ours_draft.draft_size, ours_draft.draft_size))
                image.load()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = interleaved(
            {
                "ours, draft decode": draft,
                "ours, decoded by datasets": decoded_by_datasets,
                "ours, full-detail decode + torchvision HSV jitter (old default)": torchvision_colour,
                "naive: full decode + torchvision": plain,
                "decode only, full": decode_full,
                "decode only, draft": decode_draft,
            },
            rounds=rounds,
            warmup=1,
        )
    finally:
        torch.set_num_threads(threads)
    ips = {k: len(paths) / t for k, t in times.items()}
    return {"img_per_s": ips, "draft_size": ours_draft.draft_size, "images": len(paths)}


def _tiny_dataset(root: Path, draft: bool):
    """The fixture as a `datasets` train split with the tiny preset's training transforms."""
    from cancernet_hf.data.folder import load_image_folder
    from cancernet_hf.data.transforms import build_transforms, prepare_dataset
    from cancernet_hf.models.presets import PRESETS

    processor = PRESETS[TINY].make_processor()
    ds = load_image_folder(root, check_images=False, progress=False)["train"]
    if draft:
        return prepare_dataset(ds, processor, train=True)
    return ds.with_transform(build_transforms(processor, train=True))


def _loader(dataset: Any, workers: int, batch: int, drop_last: bool = False):
    from torch.utils.data import DataLoader

    from cancernet_hf.data.transforms import collate_fn

    return DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_fn,
        persistent_workers=workers > 0, drop_last=drop_last,
    )  # fmt: skip


def _train_step_fn(batch: int, size: int) -> tuple[Callable[[dict], None], dict]:
    """One AdamW step of the tiny preset, and a ready batch of random tensors to feed it."""
    from cancernet_hf.models.members import build_member

    torch.manual_seed(0)
    model, _ = build_member(TINY)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(inputs: dict) -> None:
        out = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ready = {"pixel_values": torch.randn(batch, 3, size, size), "labels": torch.randint(0, 26, (batch,))}
    return step, ready


def loaders_vs_step(
    root: Path, batch: int, size: int, rounds: int, workers: Sequence[int]
) -> dict[str, float]:
    """Samples/s of loaders (one epoch per call) and of the training step, timed interleaved."""
    draft, decoded = _tiny_dataset(root, True), _tiny_dataset(root, False)
    step, ready = _train_step_fn(batch, size)
    contenders: dict[str, Callable[[], object]] = {}
    counts: dict[str, int] = {}

    def epoch(loader: Any, name: str) -> Callable[[], object]:
        def call() -> None:
            counts[name] = sum(len(b["labels"]) for b in loader)

        return call

    for w in workers:
        for label, ds in (("draft", draft), ("decoded by datasets", decoded)):
            name = f"DataLoader, {w} workers, {label}"
            contenders[name] = epoch(_loader(ds, w, batch), name)
    n_steps = max(1, len(draft) // batch)
    alone = f"{TINY} training step alone (ready tensors)"

    def step_alone() -> None:
        for _ in range(n_steps):
            step(ready)
        counts[alone] = n_steps * batch

    contenders[alone] = step_alone
    fed_workers = max(workers)
    fed = f"{TINY} training step fed by the {fed_workers}-worker loader"
    fed_loader = _loader(draft, fed_workers, batch, drop_last=True)

    def step_fed() -> None:
        seen = 0
        for b in fed_loader:
            step(b)
            seen += len(b["labels"])
        counts[fed] = seen

    contenders[fed] = step_fed
    times = interleaved(contenders, rounds=rounds, warmup=1)
    return {name: counts[name] / t for name, t in times.items()}


def run(smoke: bool = False) -> dict[str, Any]:
    from cancernet_hf.models.presets import PRESETS

    print(machine_line())
    root = synthetic_jpegs(per_class=2 if smoke else 3, size=64 if smoke else 512)
    paths = image_files(root, 4 if smoke else 52)
    core = per_core(paths, rounds=1 if smoke else 3)

    batch = 8 if smoke else 32
    size = PRESETS[TINY].image_size
    workers = (0,) if smoke else (0, 2)
    # One torch thread in the main process: 2 threads that spin-wait for each other made the tiny step's
    # rate swing 10x between runs on these shared cores; the workers get the other core.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = loaders_vs_step(root, batch, size, rounds=1 if smoke else 3, workers=workers)
    finally:
        torch.set_num_threads(threads)
    alone = f"{TINY} training step alone (ready tensors)"
    fed_name = f"{TINY} training step fed by the {max(workers)}-worker loader"
    step_rate, fed = rates[alone], rates[fed_name]
    best_name = f"DataLoader, {max(workers)} workers, draft"

    ips = core["img_per_s"]
    naive = ips["naive: full decode + torchvision"]
    core_rows = [[k, v, v / naive] for k, v in ips.items()]
    loader_rows = [[name, v, v / step_rate] for name, v in rates.items()]
    print_table(
        f"Decode + train transform, 512 px JPEG -> 224 px tensor, one core ({core['images']} images)",
        ["contender", "img/s per core", "× naive"],
        core_rows,
    )
    print_table(
        f"Input pipeline vs training step ({TINY}, {size} px, batch {batch})",
        ["what", "samples/s", "× training step"],
        loader_rows,
    )
    ratio = ips["ours, draft decode"] / naive
    best_loader = rates[best_name]
    old = ips["ours, full-detail decode + torchvision HSV jitter (old default)"]
    decoded = ips["ours, decoded by datasets"]
    notes = [
        f"**Target ≥ 2× the naive decode per core: {'met' if ratio >= 2 else 'NOT met'}** — our train transform "
        f"runs at {ratio:.2f}× the naive pipeline ({ips['ours, draft decode']:.0f} vs {naive:.0f} img/s per core), "
        f"while doing more (dihedral moves, H&E stain jitter). A full 512 px decode alone runs at "
        f"{ips['decode only, full']:.0f} img/s, a draft decode at {core['draft_size']} px at "
        f"{ips['decode only, draft']:.0f} img/s.",
        f"**What bought it** (the old default measured beside it: {old:.0f} img/s, {old / naive:.2f}× naive): "
        "(1) the colour jitter is one 3×3 colour matrix (`data/colour.py`: brightness, contrast, saturation and a "
        "YIQ hue rotation composed) instead of torchvision's per-pixel RGB → HSV → RGB hue shift on uint8 "
        "(~8 ms of a ~14 ms sample); (2) JPEGs decode in draft mode at the target size (512 → 256 px for a "
        "224 px model) instead of a size where the smallest crop keeps full detail (a full decode); crops under "
        "(224/256)² of the area are then upsampled a little, `draft=False` restores full-detail decoding.",
        f"**Draft mode needs undecoded images.** A `datasets.Image()` column decodes the full file before the "
        f"transform sees it ({decoded:.0f} img/s per core here). `prepare_dataset` casts the column to "
        "`Image(decode=False)` to keep the draft path; a loader that calls `set_transform` on the decoded "
        "column loses it (see the loader rows: draft vs decoded by datasets).",
        f"**Target: the input pipeline is never the bottleneck: "
        f"{'met' if best_loader > step_rate else 'NOT met'}** — the loader ({max(workers)} "
        f"workers, draft) delivers {best_loader:.0f} samples/s against the {TINY} step's {step_rate:.0f}; "
        f"fed by it, the step runs at {fed:.0f} samples/s ({fed / step_rate:.0%} of its speed on ready tensors). "
        "On 2 cores the workers and the step share the same cores, so the fed rate is the figure that counts "
        "(the step runs on one torch thread here: two threads spin-waiting for each other made its rate swing "
        "tenfold between runs on these shared cores).",
    ]
    for note in notes:
        print("\n" + note)
    payload = {
        "title": "Data path: decode + transform, DataLoader",
        "per_core": core,
        "loaders_and_step": rates,
        "train_step_samples_per_s": step_rate,
        "fed_train_samples_per_s": fed,
        "load_avg": load_average(),
        "targets": {
            "per_core_ge_2x": ratio >= 2,
            "loader_faster_than_step": best_loader > step_rate,
        },
        "target_rows": [
            [
                "Decode + train transform ≥ 2× naive per core (512 → 224)",
                f"{ratio:.2f}× (old default: {old / naive:.2f}×)",
                "met" if ratio >= 2 else "**not met**",
            ],
            [
                f"{max(workers)}-worker loader feeds more than the {TINY} step consumes",
                f"{best_loader:.0f} vs {step_rate:.0f} samples/s (fed step: {fed / step_rate:.0%} of its speed)",
                "met" if best_loader > step_rate else "**not met**",
            ],
        ],
        "tables": [
            {
                "title": f"Decode + train transform, 512 px JPEG → 224 px tensor, one core "
                f"({core['images']} synthetic JPEGs)",
                "header": ["contender", "img/s per core", "× naive"],
                "rows": core_rows,
            },
            {
                "title": f"Input pipeline vs the {TINY} training step ({size} px, batch {batch})",
                "header": ["what", "samples/s", "× training step"],
                "rows": loader_rows,
            },
        ],
        "notes": notes,
        "smoke": smoke,
    }
    save_results("data_path" if not smoke else "data_path_smoke", payload)
    return payload


if __name__ == "__main__":
    run_cli(run, __doc__)
