"""Data path: 512 px JPEG -> 224 px training tensor, per core, and DataLoader throughput against training.

python -m bench.data_path [--smoke]

Per core (torch on one thread, one process), contenders timed interleaved on the same files:
- ours, draft: `build_transforms(train=True)` on undecoded `{"path"}` items (`prepare_dataset`'s
  `Image(decode=False)`): libjpeg decodes at 1/2 scale (256 px >= what a 224 px crop needs);
- ours, decoded by `datasets`: the same transform on images a `datasets.Image()` column already decoded
  in full (`Image.open(...).load()`), which is what a plain `set_transform` gets;
- naive: full decode + a plain torchvision pipeline (RandomResizedCrop, flip, ColorJitter, to float,
  normalise) — fewer augmentations than ours (no dihedral moves, no stain jitter).

Then the input pipeline against the consumer: DataLoader samples/s with 0 and 2 workers for the tiny
preset's training transforms (64 px), the tiny preset's training step alone on ready tensors, and that
step fed by the 2-worker loader.
"""

from __future__ import annotations

import argparse
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


class LinearColourJitter:
    """Brightness, contrast, saturation and hue jitter as ONE 3x3 colour matrix on a uint8 [3,H,W] tensor.

    A proposal for `data/transforms.py` (helper C's file), measured here as a contender: torchvision's hue
    jitter goes RGB -> HSV -> RGB per pixel and costs ~8 ms of a ~14 ms 224 px train sample. A hue shift
    by a rotation of the chroma plane in YIQ space is linear, and so are brightness, saturation and
    contrast (about the image's mean grey), so the four compose into one matrix plus an offset. The
    result differs slightly from HSV hue (no clamping between the four steps, YIQ instead of HSV hue)
    but covers the same augmentation range.
    """

    _RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    _YIQ2RGB = torch.linalg.inv(_RGB2YIQ)
    _GREY = torch.tensor([0.299, 0.587, 0.114])

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def _factor(self, amount: float) -> float:
        return float(torch.empty(()).uniform_(1 - amount, 1 + amount)) if amount else 1.0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        b, c, s = self._factor(self.brightness), self._factor(self.contrast), self._factor(self.saturation)
        theta = float(torch.empty(()).uniform_(-self.hue, self.hue)) * 2 * torch.pi if self.hue else 0.0
        rot = torch.tensor(
            [
                [1.0, 0.0, 0.0],
                [0.0, math.cos(theta), -math.sin(theta)],
                [0.0, math.sin(theta), math.cos(theta)],
            ]
        )
        grey = self._GREY[:, None].expand(3, 3).T  # each output channel = the pixel's grey value
        saturate = s * torch.eye(3) + (1 - s) * grey
        matrix = b * (self._YIQ2RGB @ rot @ self._RGB2YIQ @ saturate)
        x = pixels.reshape(3, -1).float()
        mean_grey = float(self._GREY @ x.mean(1)) * b
        out = c * (matrix @ x) + (1 - c) * mean_grey
        return out.clamp_(0, 255).round_().to(torch.uint8).reshape(pixels.shape)


def per_core(paths: Sequence[Path], rounds: int) -> dict[str, Any]:
    """Images/s on one thread for the three 512 -> 224 contenders, plus the decode alone."""
    from cancernet_hf.data.transforms import build_transforms, processor_geometry
    from cancernet_hf.models.presets import PRESETS

    processor = PRESETS[FULL_SIZE_MEMBER].make_processor()
    geometry = processor_geometry(processor)
    ours_draft = build_transforms(processor, train=True)
    ours_full = build_transforms(processor, train=True, draft=False)
    ours_linear = build_transforms(processor, train=True)
    ours_linear.augment.colour = LinearColourJitter(0.2, 0.2, 0.2, 0.02)  # the transforms' defaults
    # The same, decoding at 1/2 scale (256 px): crops under 77% of the area are then upsampled a little.
    ours_half = build_transforms(processor, train=True)
    ours_half.augment.colour = ours_linear.augment.colour
    ours_half.draft_size = geometry.height + geometry.height // 7
    naive = naive_transform(geometry.height, geometry.mean, geometry.std)
    labels = _labels(paths)

    def draft() -> None:
        for path, label in zip(paths, labels):
            ours_draft({"image": [{"path": str(path), "bytes": None}], "label": [label]})

    def linear_colour() -> None:
        for path, label in zip(paths, labels):
            ours_linear({"image": [{"path": str(path), "bytes": None}], "label": [label]})

    def half_scale() -> None:
        for path, label in zip(paths, labels):
            ours_half({"image": [{"path": str(path), "bytes": None}], "label": [label]})

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
                "ours + one-matrix colour jitter (proposed)": linear_colour,
                "ours + one-matrix colour + 1/2-scale draft (proposed)": half_scale,
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
    threads = torch.get_num_threads()
    if smoke:  # one thread: on busy shared cores, spin-waiting OpenMP threads make small ops crawl
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
    linear = ips["ours + one-matrix colour jitter (proposed)"]
    half = ips["ours + one-matrix colour + 1/2-scale draft (proposed)"]
    decoded = ips["ours, decoded by datasets"]
    notes = [
        f"**Target ≥ 2× the naive decode per core: {'met' if ratio >= 2 else 'NOT met'}** — our train transform "
        f"runs at {ratio:.2f}× the naive pipeline ({ips['ours, draft decode']:.0f} vs {naive:.0f} img/s per core). "
        f"Decoding is not where the time goes: a full 512 px decode runs at {ips['decode only, full']:.0f} img/s. "
        "Two things decide it. (1) JPEG draft mode only pays when the target is at most half the file: the "
        f"train transform asks for ≥ {core['draft_size']} px (a 224 px output from a crop of 35% of the area, "
        "never upsampled), so a 512 px file decodes in full; at the tiny preset's 64 px it decodes at 1/4 scale "
        "(the loader rows below). (2) Our colour jitter runs on a uint8 tensor, where torchvision's hue shift "
        "converts every pixel RGB → HSV → RGB (~8 ms of a ~14 ms sample); the naive pipeline jitters the PIL "
        "image in C. We also do more (dihedral moves, H&E stain jitter).",
        f"**Proposed fix (measured, not yet in `data/transforms.py`)**: brightness, contrast, saturation and a "
        f"YIQ hue rotation composed into one 3×3 colour matrix: {linear:.0f} img/s ({linear / naive:.2f}× naive); "
        f"adding a 1/2-scale draft decode (256 px, small crops upsampled ≤ 1.5×): {half:.0f} img/s "
        f"({half / naive:.2f}× naive).",
        f"**Draft mode needs undecoded images.** A `datasets.Image()` column decodes the full file before the "
        f"transform sees it ({decoded:.0f} img/s per core here). `prepare_dataset` casts the column to "
        "`Image(decode=False)` to keep the draft path; a loader that calls `set_transform` on the decoded "
        "column loses it (see the loader rows: draft vs decoded by datasets).",
        f"**Target: the input pipeline is never the bottleneck: "
        f"{'met' if best_loader > step_rate else 'NOT met'}** — the loader ({max(workers)} "
        f"workers, draft) delivers {best_loader:.0f} samples/s against the {TINY} step's {step_rate:.0f}; "
        f"fed by it, the step runs at {fed:.0f} samples/s ({fed / step_rate:.0%} of its speed on ready tensors). "
        "On 2 cores the workers and the step share the same cores, so the fed rate is the figure that counts.",
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
                f"{ratio:.2f}× (proposed colour matrix: {linear / naive:.2f}×, + 1/2-scale draft: {half / naive:.2f}×)",
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
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few images: proves it runs")
    run(parser.parse_args().smoke)
