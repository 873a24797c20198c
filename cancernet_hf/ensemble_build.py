"""Turn trained members into ONE transformers model: fit on validation, assemble, save with its pipeline.

    cancernet ensemble --members runs/demo/members/vit-tiny runs/demo/members/convnext-tiny \\
        runs/demo/members/swin-tiny --data-dir data/demo --split-file runs/demo/split.json \\
        --output-dir runs/demo/ensemble

Steps (`build_ensemble`): load each member folder; predict the validation split with each member's
own preprocessing; fit one temperature per member (NLL), then the ensemble weights on the simplex
(NLL of the weighted mixture); assemble `CancerNetEnsembleForImageClassification`; run the assembled
model on validation to fit the uncertainty threshold (a quantile of its top probability) and to
record its NLL/accuracy; save weights, remote code, pipeline, image processor and `cancernet.json`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BaseImageProcessor, PreTrainedModel

from .constants import (
    DEMO_DATA_NOTICE,
    ENSEMBLE_META_FILE,
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
)
from .data.synthetic import is_synthetic
from .errors import SplitError, TaxonomyError, UnknownModelError
from .taxonomy import MULTI_CANCER, Taxonomy

logger = logging.getLogger(__name__)

# Temperatures outside this range mean a broken member (or a validation set of a handful of images).
TEMPERATURE_RANGE = (0.05, 20.0)
UNCERTAINTY_QUANTILE = 0.05
# Dirichlet pseudo-count per member for the weights (see `fit_weights`).
WEIGHT_PRIOR = 1.0

Member = tuple[str, PreTrainedModel, BaseImageProcessor]


# ---- fitting (pure: arrays in, numbers out) -----------------------------------------------------------
def nll(log_probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Mean negative log-likelihood of the true labels under (N, L) log-probabilities."""
    log_probs = torch.as_tensor(np.asarray(log_probs), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(F.nll_loss(log_probs, labels))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200) -> float:
    """Temperature T minimising the NLL of softmax(logits / T); T = 1 when fitting cannot improve on it.

    Optimised over log T (positive by construction) with L-BFGS, clamped to `TEMPERATURE_RANGE`.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    low, high = TEMPERATURE_RANGE
    fitted = float(min(max(math.exp(float(log_t.detach())), low), high))
    if not math.isfinite(fitted):
        return 1.0
    with torch.no_grad():
        better = F.cross_entropy(z / fitted, y) <= F.cross_entropy(z, y)
    return fitted if better else 1.0


def fit_weights(
    member_log_probs: np.ndarray, labels: np.ndarray, *, prior: float = WEIGHT_PRIOR, max_iter: int = 300
) -> np.ndarray:
    """Weights on the simplex maximising the validation likelihood of sum_m w_m p_m (a MAP estimate).

    `member_log_probs`: (M, N, L) calibrated log-probabilities. Softmax-parametrised, L-BFGS from equal
    weights. `prior` is a symmetric Dirichlet(1 + prior) pseudo-count per member: on a few dozen
    validation images it keeps a member from being dropped on noise; on thousands it is negligible.
    """
    lp = torch.as_tensor(np.asarray(member_log_probs), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    num_members, num_images = lp.shape[0], lp.shape[1]
    true_lp = lp[:, torch.arange(num_images), y]  # (M, N): log p_m(true label)

    def objective(log_w: torch.Tensor) -> torch.Tensor:
        nll_value = -torch.logsumexp(true_lp + log_w[:, None], dim=0).mean()
        return nll_value - prior / num_images * log_w.sum()

    alpha = torch.zeros(num_members, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([alpha], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective(F.log_softmax(alpha, dim=0))
        loss.backward()
        return loss

    optimiser.step(closure)
    equal = torch.full((num_members,), 1.0 / num_members, dtype=torch.float64)
    with torch.no_grad():
        fitted = F.softmax(alpha, dim=0)
        if not torch.isfinite(fitted).all() or objective(fitted.log()) > objective(equal.log()):
            fitted = equal
    return fitted.numpy()


def fit_uncertainty_threshold(probs: np.ndarray, quantile: float = UNCERTAINTY_QUANTILE) -> float:
    """Top-probability below which an image is flagged uncertain: the `quantile` of validation's top probs.

    By construction about `quantile` of in-distribution images are flagged; out-of-distribution
    images (other stains, other modalities) have lower top probabilities and are flagged more often.
    """
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"Uncertainty quantile must be in [0, 1), got {quantile}.")
    return float(np.quantile(np.asarray(probs).max(axis=1), quantile))


def mixture_log_probs(
    member_logits: np.ndarray, temperatures: Sequence[float], weights: Sequence[float]
) -> np.ndarray:
    """log sum_m w_m softmax(z_m / T_m): the ensemble's logits, computed from member logits (M, N, L)."""
    z = torch.as_tensor(np.asarray(member_logits), dtype=torch.float64)
    t = torch.as_tensor(list(temperatures), dtype=torch.float64).view(-1, 1, 1)
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    w = (w / w.sum()).log().view(-1, 1, 1)
    return torch.logsumexp(F.log_softmax(z / t, dim=-1) + w, dim=0).numpy()


# ---- assembling --------------------------------------------------------------------------------------
def member_geometry(processor: BaseImageProcessor) -> dict[str, Any]:
    """Output (height, width), mean, std and the central crop fraction of a member's image processor.

    Size and mean/std come from `processor_geometry` (it runs the processor, so every resize
    convention is covered); the crop fraction is what a resize-then-centre-crop processor keeps
    (ConvNeXt's `crop_pct` below 384 px, `crop_size` processors, timm's `crop_pct`).
    """
    from .data.transforms import processor_geometry

    geometry = processor_geometry(processor)
    crop_fraction = 1.0
    data_config = getattr(processor, "data_config", None)  # TimmWrapperImageProcessor
    size = dict(getattr(processor, "size", None) or {})
    if isinstance(data_config, dict):
        crop_fraction = float(data_config.get("crop_pct") or 1.0)
    elif "shortest_edge" in size and getattr(processor, "crop_pct", None) and size["shortest_edge"] < 384:
        crop_fraction = float(processor.crop_pct)  # ConvNeXt: resize to edge / crop_pct, centre-crop edge
    elif getattr(processor, "do_center_crop", False) and getattr(processor, "crop_size", None):
        resized = size.get("shortest_edge") or min(size.get("height", 0), size.get("width", 0))
        if resized:
            crop_fraction = min(geometry.height / resized, geometry.width / resized, 1.0)
    return {
        "size": [geometry.height, geometry.width],
        "mean": list(geometry.mean),
        "std": list(geometry.std),
        "crop_fraction": crop_fraction,
    }


def _check_member_labels(name: str, model: PreTrainedModel, taxonomy: Taxonomy) -> None:
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels != taxonomy.sub_names:
        raise TaxonomyError(
            f"Member {name!r} predicts {len(labels)} labels ({', '.join(labels[:4])}...) that are not the "
            f"{taxonomy.num_sub} sub-classes of taxonomy {taxonomy.name!r} in order. Train every member on the "
            "same taxonomy (pass the same --taxonomy) before ensembling."
        )


def assemble_ensemble(
    members: Sequence[Member],
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    weights: Sequence[float] | None = None,
    temperatures: Sequence[float] | None = None,
    uncertainty_threshold: float = 0.0,
    uncertainty_quantile: float = UNCERTAINTY_QUANTILE,
    image_size: int | None = None,
):
    """One `CancerNetEnsembleForImageClassification` holding copies of the members' weights (eval mode).

    Members are `(name, model, processor)`; the processor gives each member's size, mean/std and crop.
    `image_size` is the ensemble's input side (default: the largest member's).
    """
    from .ensemble.configuration_cancernet import CancerNetEnsembleConfig
    from .ensemble.modeling_cancernet import CancerNetEnsembleForImageClassification

    if not members:
        raise ValueError("assemble_ensemble needs at least one member (name, model, processor).")
    names = [name for name, _, _ in members]
    if len(set(names)) != len(names):
        raise ValueError(f"Member names must be unique, got {names}.")
    for name, model, _ in members:
        _check_member_labels(name, model, taxonomy)
    geometry = [member_geometry(processor) for _, _, processor in members]
    config = CancerNetEnsembleConfig(
        member_configs=[model.config.to_dict() for _, model, _ in members],
        member_names=names,
        member_weights=list(weights) if weights is not None else [1.0] * len(members),
        member_temperatures=list(temperatures) if temperatures is not None else [1.0] * len(members),
        member_image_sizes=[g["size"] for g in geometry],
        member_image_means=[g["mean"] for g in geometry],
        member_image_stds=[g["std"] for g in geometry],
        member_crop_fractions=[g["crop_fraction"] for g in geometry],
        image_size=image_size,
        sub_to_main=list(taxonomy.sub_to_main),
        main_names=taxonomy.main_names,
        human_names=[s.human_name for s in taxonomy.sub_classes],
        dihedral_mask=list(taxonomy.dihedral_mask),
        uncertainty_threshold=uncertainty_threshold,
        uncertainty_quantile=uncertainty_quantile,
        max_image_pixels=MAX_IMAGE_PIXELS,
        min_image_side=MIN_IMAGE_SIDE,
        taxonomy_name=taxonomy.name,
        id2label=taxonomy.id2label,
        label2id=taxonomy.label2id,
    )
    ensemble = CancerNetEnsembleForImageClassification(config)
    # Copy in-memory state dicts: the fresh members have the same module tree, whereas key names on disk
    # can differ (renamed keys, non-persistent buffers rebuilt by each member's own init).
    for target, (name, model, _) in zip(ensemble.members, members):
        result = target.load_state_dict(model.state_dict(), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"Member {name!r} does not fit its rebuilt copy: missing {result.missing_keys[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}."
            )
    return ensemble.eval()


def ensemble_image_processor(model) -> BaseImageProcessor:
    """The processor saved with the ensemble: RGB in [0, 1] at the ensemble's size, no normalisation.

    Members normalise inside `forward`, so the stock `image-classification` pipeline works as is.
    """
    from PIL import Image
    from transformers import ViTImageProcessor

    height, width = model.config.image_size
    return ViTImageProcessor(
        do_resize=True,
        size={"height": height, "width": width},
        resample=Image.Resampling.BICUBIC,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=False,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
    )


def save_ensemble(
    model, output_dir: str | Path, *, processor: BaseImageProcessor | None = None, meta: dict | None = None
) -> Path:
    """Write weights, config (auto_map + custom_pipelines), remote code, image processor and cancernet.json."""
    from .ensemble.pipeline_cancernet import TASK, CancerNetImageClassificationPipeline, register_pipeline

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    processor = processor if processor is not None else ensemble_image_processor(model)
    register_pipeline()
    pipe = CancerNetImageClassificationPipeline(
        model=model, image_processor=processor, task=TASK, device=model.device
    )
    pipe.save_pretrained(output_dir)  # model + remote code + pipeline module + processor
    if meta is not None:
        (output_dir / ENSEMBLE_META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("Saved the ensemble to %s", output_dir)
    return output_dir


# ---- the whole build ---------------------------------------------------------------------------------
def load_members(member_dirs: Sequence[str | Path], taxonomy: Taxonomy = MULTI_CANCER) -> list[Member]:
    """Each folder as (name, model, processor); names are the folder names, made unique."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    members: list[Member] = []
    for directory in member_dirs:
        path = Path(directory)
        if not (path / "config.json").is_file():
            raise UnknownModelError(
                f"Member folder {path} holds no config.json: pass the output folder of `cancernet train`."
            )
        model = AutoModelForImageClassification.from_pretrained(path, dtype=torch.float32).eval()
        processor = AutoImageProcessor.from_pretrained(path)
        name = path.resolve().name
        taken = {n for n, _, _ in members}
        name = name if name not in taken else f"{name}-{len(members)}"
        _check_member_labels(name, model, taxonomy)
        members.append((name, model, processor))
    return members


def build_ensemble(
    member_dirs: Sequence[str | Path],
    data_dir: str | Path,
    split_file: str | Path,
    output_dir: str | Path,
    *,
    taxonomy: Taxonomy = MULTI_CANCER,
    batch_size: int = 64,
    uncertainty_quantile: float = UNCERTAINTY_QUANTILE,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Path:
    """Fit temperatures, weights and the uncertainty threshold on validation; save the ensemble folder.

    Predictions run on `device` (default: CUDA when available, else CPU); the folder is saved from CPU.
    """
    from .data.folder import load_image_folder
    from .models.inference import predict_logits

    if not member_dirs:
        raise UnknownModelError(
            "No member folders given: pass at least one trained member (--members DIR ...)."
        )
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    members = load_members(member_dirs, taxonomy)
    splits = load_image_folder(data_dir, taxonomy, split_file=split_file)
    if "validation" not in splits or len(splits["validation"]) == 0:
        raise SplitError(
            f"Split manifest {split_file} has no validation images; the ensemble is fitted on them. "
            "Recreate the split with a validation fraction > 0."
        )
    validation = splits["validation"]

    member_logits, labels = [], None
    for name, model, processor in members:
        logger.info("Predicting the validation split (%d images) with %s", len(validation), name)
        logits, member_labels = predict_logits(
            model.to(device), processor, validation, batch_size=batch_size, progress=progress
        )
        model.to("cpu")
        member_logits.append(np.asarray(logits, dtype=np.float64))
        labels = np.asarray(member_labels)
    stacked = np.stack(member_logits)  # (M, N, L)

    temperatures = [fit_temperature(z, labels) for z in stacked]
    calibrated = np.stack(
        [F.log_softmax(torch.as_tensor(z / t), dim=-1).numpy() for z, t in zip(stacked, temperatures)]
    )
    weights = fit_weights(calibrated, labels)

    ensemble = assemble_ensemble(
        members,
        taxonomy,
        weights=weights.tolist(),
        temperatures=temperatures,
        uncertainty_quantile=uncertainty_quantile,
    )
    processor = ensemble_image_processor(ensemble)
    logger.info("Running the assembled ensemble on the validation split")
    ens_logits, _ = predict_logits(
        ensemble.to(device), processor, validation, batch_size=batch_size, progress=progress
    )
    ensemble.to("cpu")
    ens_log_probs = F.log_softmax(
        torch.as_tensor(np.asarray(ens_logits), dtype=torch.float64), dim=-1
    ).numpy()
    threshold = fit_uncertainty_threshold(np.exp(ens_log_probs), uncertainty_quantile)
    ensemble.config.uncertainty_threshold = threshold

    meta = _fit_report(
        members=members,
        member_dirs=member_dirs,
        stacked=stacked,
        labels=labels,
        temperatures=temperatures,
        weights=weights,
        ens_log_probs=ens_log_probs,
        threshold=threshold,
        quantile=uncertainty_quantile,
        data_dir=Path(data_dir),
        split_file=Path(split_file),
        taxonomy=taxonomy,
    )
    return save_ensemble(ensemble, output_dir, processor=processor, meta=meta)


def _accuracy(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(log_probs).argmax(-1) == labels))


def _fit_report(
    *,
    members: list[Member],
    member_dirs: Sequence[str | Path],
    stacked: np.ndarray,
    labels: np.ndarray,
    temperatures: list[float],
    weights: np.ndarray,
    ens_log_probs: np.ndarray,
    threshold: float,
    quantile: float,
    data_dir: Path,
    split_file: Path,
    taxonomy: Taxonomy,
) -> dict[str, Any]:
    """cancernet.json: what was fitted, on what, and how much it helped (validation numbers)."""
    num_members = len(members)
    plain = mixture_log_probs(stacked, [1.0] * num_members, [1.0] * num_members)
    fitted = mixture_log_probs(stacked, temperatures, weights)
    synthetic = is_synthetic(data_dir)
    member_rows = []
    for (name, model, _), directory, z, t, w in zip(members, member_dirs, stacked, temperatures, weights):
        raw = F.log_softmax(torch.as_tensor(z), dim=-1).numpy()
        scaled = F.log_softmax(torch.as_tensor(z / t), dim=-1).numpy()
        member_rows.append(
            {
                "name": name,
                "source": str(Path(directory).resolve()),
                "model_type": model.config.model_type,
                "temperature": t,
                "weight": float(w),
                "validation": {
                    "nll_before": nll(raw, labels),
                    "nll_after": nll(scaled, labels),
                    "accuracy": _accuracy(raw, labels),
                },
            }
        )
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "taxonomy": taxonomy.name,
        "data_dir": str(data_dir.resolve()),
        "synthetic_data": synthetic,
        "notice": DEMO_DATA_NOTICE if synthetic else None,
        "split": _split_info(split_file),
        "num_validation_images": int(len(labels)),
        "members": member_rows,
        "ensemble": {
            "validation": {
                "nll_equal_weights_unit_temperature": nll(plain, labels),
                "nll_fitted_from_member_logits": nll(fitted, labels),
                "nll": nll(ens_log_probs, labels),
                "accuracy": _accuracy(ens_log_probs, labels),
            }
        },
        "uncertainty": {"method": "max_probability", "quantile": quantile, "threshold": threshold},
    }


def _split_info(split_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SplitError(
            f"Cannot read split manifest {split_file}: {e}. Recreate it with `cancernet data split`."
        ) from e
    return {
        "file": str(split_file.resolve()),
        "protocol": data.get("protocol"),
        "seed": data.get("seed"),
        "fractions": data.get("fractions"),
    }
