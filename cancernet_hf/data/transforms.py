"""Train and eval transforms bound to a member's image processor, for `Dataset.set_transform`.

One function, `build_transforms(processor, taxonomy, train=...)`, serves training, evaluation and
inference, so preprocessing cannot drift between them:

- eval: the processor itself (its resize, centre crop, rescale and mean/std), exactly what the
  stock pipeline does;
- train: random resized crop to the processor's output size, dihedral moves (rot90 + flip) only for
  sub-classes whose taxonomy entry allows them (microscopy: yes; MRI/CT: no, anatomy has an
  orientation), colour jitter, H&E stain jitter only for H&E histopathology, optional
  RandAugment/TrivialAugment, then the processor's mean/std.

The per-sample rules read ``batch["label"]``. Images may be decoded PIL images (a `datasets` Image
column) or undecoded ``{"bytes", "path"}`` dicts (``Image(decode=False)``, see `prepare_dataset`):
those JPEGs are decoded in draft mode (DCT scaling) at about the size the model needs, 2-4x faster
for 512 px files trained at 64-224 px.

    >>> ds = prepare_dataset(dsets["train"], processor, MULTI_CANCER, train=True)
    >>> batch = collate_fn([ds[0], ds[1]])   # {"pixel_values": [2,3,H,W], "labels": [2]}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from ..errors import TaxonomyError
from ..taxonomy import MULTI_CANCER, Taxonomy
from .colour import LinearColourJitter
from .images import open_image, to_rgb
from .stain import hed_jitter

logger = logging.getLogger(__name__)

AutoAugment = Literal["randaugment", "trivialaugment"]
AUTO_AUGMENTS: tuple[str, ...] = ("randaugment", "trivialaugment")
# Modalities whose colour comes from haematoxylin and eosin (stain jitter applies).
STAIN_MODALITIES = frozenset({"h&e histopathology", "h&e", "histopathology"})

# The side of the square probe image used to read a processor's output size.
_PROBE_SIDE = 512
_PIL_TO_TV = {
    0: InterpolationMode.NEAREST,
    1: InterpolationMode.LANCZOS,
    2: InterpolationMode.BILINEAR,
    3: InterpolationMode.BICUBIC,
    4: InterpolationMode.BOX,
    5: InterpolationMode.HAMMING,
}
_NAME_TO_TV = {mode.value: mode for mode in InterpolationMode}  # timm spells them "bicubic", ...


class Geometry(NamedTuple):
    """What a processor turns an image into: output height/width and normalisation statistics."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def processor_geometry(processor: Any) -> Geometry:
    """Output size and mean/std of an image processor (transformers' or TimmWrapper's).

    The size is read by running the processor on a square probe image, so every resize/crop
    convention (``height``/``width``, ``shortest_edge`` + ``crop_pct``, ``crop_size``, timm's
    ``input_size``) is covered by the processor's own code.
    """
    probe = Image.new("RGB", (_PROBE_SIDE, _PROBE_SIDE), (128, 128, 128))
    pixels = processor(images=[probe], return_tensors="pt")["pixel_values"]
    height, width = (int(s) for s in pixels.shape[-2:])
    data_config = getattr(processor, "data_config", None)  # TimmWrapperImageProcessor
    if data_config is not None:
        mean, std = data_config["mean"], data_config["std"]
    elif getattr(processor, "do_normalize", True):
        mean, std = processor.image_mean, processor.image_std
    else:
        mean, std = 0.0, 1.0
    return Geometry(height, width, _triple(mean), _triple(std))


def build_transforms(
    processor: Any,
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    train: bool,
    crop_scale: tuple[float, float] = (0.35, 1.0),
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
    dihedral: bool = True,
    color_jitter: float = 0.2,
    hue_jitter: float = 0.02,
    stain_jitter: float = 0.05,
    auto_augment: AutoAugment | None = None,
    draft: bool = True,
) -> BatchTransform:
    """Batch transform for `Dataset.set_transform`/`with_transform`.

    Takes ``{"image": [...], "label": [...], ...}`` and returns ``{"pixel_values": [Tensor[3,H,W]],
    "labels": [int]}`` (plus ``"main_label"`` when present). Set an augmentation to 0/None/False to
    switch it off; eval ignores them all. Randomness comes from torch's global RNG (seeded by the
    Trainer and per DataLoader worker).
    """
    geometry = processor_geometry(processor)
    if auto_augment is not None and auto_augment not in AUTO_AUGMENTS:
        raise ValueError(
            f"auto_augment={auto_augment!r} is not one of {AUTO_AUGMENTS}; pass one of them or None."
        )
    if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"crop_scale={crop_scale} must satisfy 0 < low <= high <= 1.")
    side = max(geometry.height, geometry.width)
    if not train:
        # The processor resizes first; a resize-then-crop processor needs a little more than its output.
        logger.debug("Eval transforms: processor %s -> %s.", type(processor).__name__, geometry)
        return BatchTransform(processor, None, math.ceil(side * 1.15) if draft else None)
    augment = _TrainAugment(
        geometry,
        taxonomy,
        interpolation=_interpolation(processor),
        crop_scale=crop_scale,
        crop_ratio=crop_ratio,
        dihedral=dihedral,
        color_jitter=color_jitter,
        hue_jitter=hue_jitter,
        stain_jitter=stain_jitter,
        auto_augment=auto_augment,
    )
    logger.debug("Train transforms: %s, crop scale %s, auto_augment %s.", geometry, crop_scale, auto_augment)
    # Decode at the target size (libjpeg's 1/2, 1/4, 1/8 scales): 512 px -> 256 px for a 224 px model
    # is ~2x faster than a full decode. Crops smaller than (side/decoded)^2 of the area are then
    # upsampled a little; pass draft=False to decode in full when that detail matters.
    return BatchTransform(processor, augment, side if draft else None)


class BatchTransform:
    """The callable `build_transforms` returns (a class, so DataLoader workers can pickle it)."""

    def __init__(self, processor: Any, augment: _TrainAugment | None, draft_size: int | None) -> None:
        self.processor = processor
        self.augment = augment
        self.draft_size = draft_size

    @property
    def train(self) -> bool:
        return self.augment is not None

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        images = [_decode(item, self.draft_size) for item in batch["image"]]
        labels = batch.get("label")
        if self.augment is not None:
            pixels = [
                self.augment(img, None if labels is None else labels[i]) for i, img in enumerate(images)
            ]
        else:
            pixels = list(self.processor(images=images, return_tensors="pt")["pixel_values"])
        out: dict[str, list] = {"pixel_values": pixels}
        if labels is not None:
            out["labels"] = [int(x) for x in labels]
        if "main_label" in batch:
            out["main_label"] = list(batch["main_label"])
        return out


def prepare_dataset(
    dataset: Any, processor: Any, taxonomy: Taxonomy = MULTI_CANCER, *, train: bool, **options: Any
):
    """`dataset` (a `Dataset` or `DatasetDict`) with lazy JPEG decoding and the transforms attached.

    Casts the ``image`` column to ``Image(decode=False)`` so the transform decodes in draft mode,
    then returns ``dataset.with_transform(...)`` (the input is not modified).
    """
    import datasets

    if "image" in _column_names(dataset):
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    return dataset.with_transform(build_transforms(processor, taxonomy, train=train, **options))


def collate_fn(examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack transformed examples into model inputs for Trainer/DataLoader (extra keys dropped).

    Use with ``TrainingArguments(remove_unused_columns=False)``: otherwise Trainer removes the
    ``image`` column before the transform can read it.
    """
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples])}
    if all("labels" in e for e in examples):
        batch["labels"] = torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long)
    return batch


# ---- training augmentation --------------------------------------------------------------------


class _TrainAugment:
    """Per-sample train augmentation; label-dependent moves follow the taxonomy."""

    def __init__(
        self,
        geometry: Geometry,
        taxonomy: Taxonomy,
        *,
        interpolation: InterpolationMode,
        crop_scale: tuple[float, float],
        crop_ratio: tuple[float, float],
        dihedral: bool,
        color_jitter: float,
        hue_jitter: float,
        stain_jitter: float,
        auto_augment: AutoAugment | None,
    ) -> None:
        self.size = (geometry.height, geometry.width)
        self.mean = list(geometry.mean)
        self.std = list(geometry.std)
        self.num_labels = taxonomy.num_sub
        self.dihedral_ok = taxonomy.dihedral_mask if dihedral else (False,) * taxonomy.num_sub
        self.stain_ok = tuple(s.modality.casefold() in STAIN_MODALITIES for s in taxonomy.sub_classes)
        self.stain_jitter = stain_jitter
        self.crop = v2.RandomResizedCrop(
            self.size, scale=crop_scale, ratio=crop_ratio, interpolation=interpolation, antialias=True
        )
        self.colour = (
            LinearColourJitter(color_jitter, color_jitter, color_jitter, hue_jitter)
            if color_jitter or hue_jitter
            else None
        )
        # Their rotations/shears run on tensors, where torchvision has no bicubic: use bilinear there.
        tensor_mode = (
            interpolation if interpolation == InterpolationMode.NEAREST else InterpolationMode.BILINEAR
        )
        self.auto = {
            None: None,
            "randaugment": v2.RandAugment(interpolation=tensor_mode),
            "trivialaugment": v2.TrivialAugmentWide(interpolation=tensor_mode),
        }[auto_augment]

    def __call__(self, image: Image.Image, label: int | None) -> torch.Tensor:
        if label is not None and not 0 <= int(label) < self.num_labels:
            raise TaxonomyError(
                f"Label {label} is outside the taxonomy's {self.num_labels} sub-classes; the dataset and the "
                "taxonomy disagree (pass the taxonomy the dataset was loaded with)."
            )
        pixels = F.pil_to_tensor(self.crop(image))  # uint8 [3,H,W]
        if label is not None and self.dihedral_ok[label]:
            pixels = random_dihedral(pixels)
        if self.auto is not None:
            pixels = self.auto(pixels)
        pixels = F.to_dtype(pixels, torch.float32, scale=True)
        if self.colour is not None:  # on floats: no uint8 rounding between the colour steps
            pixels = self.colour(pixels)
        if label is not None and self.stain_ok[label] and self.stain_jitter:
            pixels = hed_jitter(pixels, scale=self.stain_jitter, shift=self.stain_jitter)
        return F.normalize(pixels, self.mean, self.std)


def random_dihedral(pixels: torch.Tensor) -> torch.Tensor:
    """One of the 8 rotations/reflections of a square [C,H,W] image (4 of them if not square)."""
    square = pixels.shape[-1] == pixels.shape[-2]
    k = int(torch.randint(4 if square else 2, (1,))) * (1 if square else 2)
    if k:
        pixels = torch.rot90(pixels, k, dims=(-2, -1))
    if torch.rand(()) < 0.5:
        pixels = pixels.flip(-1)
    return pixels


# ---- helpers ----------------------------------------------------------------------------------


def _decode(item: Any, draft_size: int | None) -> Image.Image:
    """RGB PIL image from a decoded PIL image or an undecoded ``{"bytes", "path"}`` dict."""
    if isinstance(item, Image.Image):
        if draft_size and item.format == "JPEG" and getattr(item, "tile", None):
            item.draft(None, (draft_size, draft_size))  # only acts on a not-yet-loaded JPEG
        return to_rgb(item)
    return open_image(item, draft_size=draft_size)


def _interpolation(processor: Any) -> InterpolationMode:
    data_config = getattr(processor, "data_config", None)
    if data_config is not None:
        return _NAME_TO_TV.get(str(data_config.get("interpolation", "bicubic")), InterpolationMode.BICUBIC)
    resample = getattr(processor, "resample", 2)
    if isinstance(resample, InterpolationMode):
        return resample
    return _PIL_TO_TV.get(int(resample), InterpolationMode.BILINEAR)


def _triple(value: float | Sequence[float]) -> tuple[float, float, float]:
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ValueError(f"Expected 1 or 3 normalisation values, got {values}.")
    return (values[0], values[1], values[2])


def _column_names(dataset: Any) -> list[str]:
    names = dataset.column_names
    if isinstance(names, dict):  # DatasetDict: {split: [...]}
        return sorted({c for cols in names.values() for c in cols})
    return list(names)
