"""`cancer-image-classification`: the ensemble's own pipeline (sub-class, main class, members, uncertainty).

Remote code: imports only numpy, PIL, torch and transformers. Saved beside the model
(`custom_pipelines` in config.json), so a fresh Python with transformers alone runs
`pipeline(model=DIR, trust_remote_code=True)` without naming the task.

Per image it returns the stock `label`/`score` list's richer cousin:
{"sub_class": [{"label", "name", "score"}], "main_class": [{"label", "score"}],
 "members": [{"member", "label", "score", "weight"}], "agreement", "entropy", "uncertain", "tta"}.
A main class's score is the sum of its sub-classes' scores, so the two levels never disagree.

Speed: one decode and resize per image for all members, `batch_size=` stacks images into one forward
per member, and `precision=` picks the arithmetic: "fp32" (the model as loaded, bit-for-bit what the
stock image-classification pipeline gives), "bf16" (a bfloat16 copy of the members, made once on first
use: ~1.5x faster on CPUs with native bf16, probabilities within ~0.01 of fp32) or "auto" (bf16 where
the CPU has native bf16 dot products, AVX512-BF16 or AMX, else fp32). The default is the config's
`inference_precision` when set, else "fp32". See docs/BENCHMARKS.md for the measured figures.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers import AutoModelForImageClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TASK = "cancer-image-classification"
PRECISIONS = ("auto", "bf16", "fp32")

_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


# ---- image loading: every input kind -> a checked RGB PIL image ---------------------------------------
def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {os.fspath(source)!r}"
    return f"{type(source).__name__} input"


def _open(source: Any, timeout: float | None) -> Image.Image:
    """Open lazily (header only) so size checks happen before any pixel is decoded."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ValueError(
                "Cannot read the image: the bytes input is empty (0 bytes). Pass the file's content."
            )
        return Image.open(io.BytesIO(data))
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.startswith(("http://", "https://")):
            from transformers.image_utils import load_image

            return load_image(text, timeout=timeout)
        if not os.path.isfile(text):
            raise ValueError(f"Cannot read the image: {text!r} is not an existing file. Check the path.")
        if os.path.getsize(text) == 0:
            raise ValueError(
                f"Cannot read the image: {text!r} is empty (0 bytes). The file is damaged; re-export it."
            )
        return Image.open(text)
    if hasattr(source, "read"):
        return Image.open(source)
    raise ValueError(
        f"Cannot read the image: unsupported input type {type(source).__name__}. Pass a file path, a PIL "
        "image, a numpy array (H, W[, C]), raw bytes, or a list of these."
    )


def _from_array(array: np.ndarray) -> Image.Image:
    """(H, W[, 1|3|4]) or channels-first arrays; uint8, bool, 16-bit (stretched later), float in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels-first (C, H, W)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(
            f"Cannot read the image: numpy array of shape {a.shape} is not (H, W), (H, W, 3) or (H, W, 4)."
        )
    if a.dtype == bool:
        return Image.fromarray(a.astype(np.uint8) * 255)
    if a.dtype == np.uint8:
        return Image.fromarray(a)
    if a.ndim == 2 and (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        return _stretch(a)  # a single high-depth channel: as a 16-bit or float image file would be
    if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all():
        scale = 255.0 if a.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(a * scale, 0, 255).round().astype(np.uint8))
    if np.issubdtype(a.dtype, np.integer):
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(a / top * 255.0, 0, 255).round().astype(np.uint8))
    raise ValueError(
        f"Cannot read the image: numpy array of dtype {a.dtype} is not an image (or holds NaN/inf)."
    )


def _stretch(array: np.ndarray) -> Image.Image:
    """16/32-bit or float intensities: linear [min, max] -> [0, 255] (as training's loader does; never clipped)."""
    a = array.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return Image.fromarray(np.zeros(a.shape, dtype=np.uint8)).convert("RGB")
    lo, hi = float(a[finite].min()), float(a[finite].max())
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.full(a.shape, min(max(lo, 0.0), 255.0))
    return Image.fromarray(np.rint(np.where(finite, scaled, 0.0)).astype(np.uint8)).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha over white (slide glass), 16-bit stretched, CMYK/palette/grey converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_BIT_MODES:
        array = np.asarray(image)
        return _stretch(array.astype(array.dtype.newbyteorder("=")))
    if mode in _ALPHA_MODES or (mode == "P" and image.has_transparency_data):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode in ("LAB", "BGR;15", "BGR;16", "BGR;24"):
        raise ValueError(
            f"Cannot convert image mode {mode!r} to RGB reliably; convert it to RGB and save again."
        )
    return image.convert("RGB")


def load_rgb_image(
    source: Any, *, max_pixels: int = 40_000_000, min_side: int = 16, timeout: float | None = None
) -> Image.Image:
    """Open any supported input as a checked RGB image, or raise a ValueError that names the problem."""
    what = _describe(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(source, timeout)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(
            f"Refusing {what}: its header declares too many pixels (decompression bomb?): {e}. Downscale it."
        ) from e
    except UnidentifiedImageError as e:
        raise ValueError(
            f"Cannot read {what}: it is not an image format PIL recognises (a text file or damaged data?)."
        ) from e
    except OSError as e:
        raise ValueError(f"Cannot read {what}: {e}.") from e
    width, height = image.size
    if width * height > max_pixels:
        raise ValueError(
            f"Refusing {what}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (decompression bomb protection). Downscale the image first."
        )
    if min(width, height) < min_side:
        raise ValueError(
            f"Refusing {what}: {width}x{height} is smaller than {min_side} px on a side; a classifier "
            "cannot read a thumbnail or icon. Pass the full-resolution image."
        )
    if getattr(image, "n_frames", 1) > 1:
        raise ValueError(
            f"Refusing {what}: it is animated ({image.n_frames} frames); pass a single still image."
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as e:
        raise ValueError(
            f"Cannot decode {what}: {e} (truncated or corrupt file?). Re-export the image."
        ) from e


# ---- precision ----------------------------------------------------------------------------------------
def native_bf16_cpu() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX): only then bf16 pays."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


# ---- the pipeline ----------------------------------------------------------------------------------
class CancerNetImageClassificationPipeline(Pipeline):
    """Ensemble prediction with main classes, member votes, uncertainty and optional dihedral TTA."""

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        tta: bool | None = None,
        timeout: float | None = None,
        precision: str | None = None,
    ):
        preprocess_params = {} if timeout is None else {"timeout": timeout}
        forward_params = {} if tta is None else {"tta": bool(tta)}
        if precision is not None:
            if precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
            forward_params["precision"] = precision
        postprocess_params = {}
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
            postprocess_params["top_k"] = int(top_k)
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, torch.Tensor]:
        config = self.model.config
        rgb = load_rgb_image(
            image, max_pixels=config.max_image_pixels, min_side=config.min_image_side, timeout=timeout
        )
        inputs = self.image_processor(images=rgb, return_tensors="pt")
        return {"pixel_values": inputs["pixel_values"].to(self.dtype)}

    def get_inference_context(self):
        return torch.inference_mode  # stricter than the base class's no_grad: no autograd bookkeeping at all

    def resolve_precision(self, precision: str | None = None) -> str:
        """What `precision` (default: config.inference_precision, else "fp32") resolves to: fp32 or bf16."""
        requested = precision or getattr(self.model.config, "inference_precision", None) or "fp32"
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}.")
        if requested == "auto":
            return "bf16" if self.device.type == "cpu" and native_bf16_cpu() else "fp32"
        return requested

    def _model_in(self, precision: str) -> torch.nn.Module:
        """The model itself when it already has that dtype, else a copy made once and kept."""
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        if self.model.dtype == dtype:
            return self.model
        copies = self.__dict__.setdefault("_precision_copies", {})
        if precision not in copies:
            copies[precision] = copy.deepcopy(self.model).to(dtype).eval()
        return copies[precision]

    def _forward(
        self, model_inputs: dict[str, torch.Tensor], tta: bool = False, precision: str | None = None
    ) -> dict[str, torch.Tensor]:
        model = self._model_in(self.resolve_precision(precision))
        pixel_values = model_inputs["pixel_values"]
        out = model(pixel_values=pixel_values, output_member_probs=True)
        probs, member_probs = out.logits.float().softmax(-1), out.member_probs.float()
        applied = torch.zeros(probs.shape[0], dtype=torch.bool, device=probs.device)
        if tta:
            # Rotations/flips keep the label for microscopy only; MRI/CT have an anatomical orientation.
            allowed = torch.tensor(self.model.config.dihedral_mask, dtype=torch.bool, device=probs.device)
            applied = allowed[probs.argmax(-1)]
            if applied.any():
                probs[applied], member_probs[applied] = self._dihedral_mean(model, pixel_values[applied])
        return {"probs": probs, "member_probs": member_probs, "tta": applied}

    def _dihedral_mean(
        self, model: torch.nn.Module, pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ensemble and member probabilities over the 8 rotations/flips of the input."""
        probs, member_probs = [], []
        for k in range(4):
            for flip in (False, True):
                x = torch.rot90(pixel_values, k, dims=(-2, -1))
                out = model(pixel_values=x.flip(-1) if flip else x, output_member_probs=True)
                probs.append(out.logits.float().softmax(-1))
                member_probs.append(out.member_probs.float())
        return torch.stack(probs).mean(0), torch.stack(member_probs).mean(0)

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int = 5) -> dict[str, Any]:
        config = self.model.config
        probs = model_outputs["probs"].reshape(-1).cpu().numpy().astype(np.float64)
        member_probs = model_outputs["member_probs"].reshape(len(config.member_names), -1).cpu().numpy()
        top = int(probs.argmax())
        num_labels = probs.shape[0]
        human = config.human_names or [config.id2label[i] for i in range(num_labels)]
        sub_class = [
            {"label": config.id2label[int(i)], "name": human[int(i)], "score": float(probs[i])}
            for i in np.argsort(-probs, kind="stable")[: min(top_k, num_labels)]
        ]
        main_class = []
        if config.sub_to_main:
            main_scores = np.zeros(len(config.main_names))
            np.add.at(main_scores, np.asarray(config.sub_to_main), probs)
            main_class = [
                {"label": config.main_names[int(j)], "score": float(main_scores[j])}
                for j in np.argsort(-main_scores, kind="stable")[: min(top_k, len(main_scores))]
            ]
        votes = member_probs.argmax(-1)
        members = [
            {
                "member": name,
                "label": config.id2label[int(votes[m])],
                "score": float(member_probs[m, votes[m]]),
                "weight": float(weight),
            }
            for m, (name, weight) in enumerate(zip(config.member_names, config.normalised_weights))
        ]
        positive = probs[probs > 0]
        return {
            "sub_class": sub_class,
            "main_class": main_class,
            "members": members,
            "agreement": float(np.mean(votes == top)),
            "entropy": float(-(positive * np.log(positive)).sum()),
            "uncertain": bool(probs[top] < config.uncertainty_threshold),
            "tta": bool(model_outputs["tta"].reshape(-1)[0]),
        }


def register_pipeline() -> None:
    """Register the task (needed once before `save_pretrained` writes `custom_pipelines`)."""
    if PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl") is CancerNetImageClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=CancerNetImageClassificationPipeline,
        pt_model=AutoModelForImageClassification,
        type="image",
    )


__all__ = [
    "PRECISIONS",
    "TASK",
    "CancerNetImageClassificationPipeline",
    "load_rgb_image",
    "native_bf16_cpu",
    "register_pipeline",
]
