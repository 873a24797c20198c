"""Build one ensemble member: a preset name, a local checkpoint folder or a Hub id -> model + processor.

Every member gets the taxonomy's sub-class head (``id2label``/``label2id``); a checkpoint trained on
other labels (ImageNet's 1000, say) keeps its backbone and gets a fresh head
(``ignore_mismatched_sizes=True``). Hub ids cover transformers checkpoints (ViT, ConvNeXt, Swin, ...)
and ``timm/...`` checkpoints through transformers' TimmWrapper.

    >>> model, processor = build_member("vit-tiny")          # random init, offline
    >>> model, processor = build_member("runs/demo/members/vit-tiny")
    >>> model, processor = build_member("facebook/convnext-tiny-224")   # needs the Hub or its cache
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    BaseImageProcessor,
    PreTrainedModel,
)

from ..errors import HubUnreachableError, UnknownModelError, did_you_mean
from ..taxonomy import MULTI_CANCER, Taxonomy
from .presets import PRESETS, REGULARISATION_KEYS, Preset

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
# owner/name, as the Hub spells repo ids (the owner-less legacy form is not accepted: too easily a typo).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Module attributes holding a dropout probability that is not an nn.Dropout (functional attention dropout).
_DROPOUT_ATTRS = ("drop_prob", "attention_dropout", "dropout_prob", "attn_drop_rate")


def build_member(
    name_or_path: str | Path,
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    **config_overrides: Any,
) -> tuple[PreTrainedModel, BaseImageProcessor]:
    """Model with a ``taxonomy.num_sub``-way head plus its image processor.

    ``name_or_path`` is tried as a preset name, then as a local folder, then as a Hub id.
    ``config_overrides`` (e.g. ``drop_path_rate=0.0``) are set on the model config.
    Raises `UnknownModelError` for a name that is none of those, `HubUnreachableError` when a Hub id
    cannot be fetched and is not cached.
    """
    name = str(name_or_path)
    # id2label fixes num_labels; passing both makes transformers warn about the checkpoint's old size.
    label_kwargs = {
        "id2label": taxonomy.id2label,
        "label2id": taxonomy.label2id,
    }
    if name in PRESETS:
        return _from_preset(PRESETS[name], {**config_overrides, **label_kwargs})

    path = Path(name).expanduser()
    if path.is_dir():
        return _from_checkpoint(str(path), taxonomy, label_kwargs, config_overrides, {})
    if path.exists():
        raise UnknownModelError(
            f"Cannot build a member from {name!r}: it is a file, not a folder. Pass the folder that holds "
            f"{CONFIG_NAME}, the weights and preprocessor_config.json."
        )
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise UnknownModelError(
            f"Cannot build a member from {name!r}: no such folder. Pass an existing checkpoint folder, a Hub id "
            f"(owner/name) or a preset ({_preset_list()})."
        )
    if not _HUB_ID.match(name):
        raise UnknownModelError(
            f"Unknown member {name!r}: it is not a preset, not an existing folder and not a Hub id "
            f"(owner/name).{did_you_mean(name, PRESETS)} Presets: {_preset_list()}."
        )
    hub_kwargs = {
        "revision": revision,
        "cache_dir": None if cache_dir is None else str(cache_dir),
        "token": token,
        "local_files_only": local_files_only,
    }
    _resolve_hub_config(name, hub_kwargs)
    return _from_checkpoint(name, taxonomy, label_kwargs, config_overrides, hub_kwargs)


def disable_dropout(model: nn.Module) -> int:
    """Switch off dropout and stochastic depth everywhere (config too); returns how many modules changed.

    Needed when two training runs must produce identical parameters (accumulation/DDP equivalence).
    """
    changed = 0
    for module in model.modules():
        touched = False
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p:
            module.p = 0.0
            touched = True
        for attr in _DROPOUT_ATTRS:
            value = getattr(module, attr, None)
            if isinstance(value, float) and value:
                setattr(module, attr, 0.0)
                touched = True
        changed += touched
    config = getattr(model, "config", None)
    if config is not None:
        for key in {k for keys in REGULARISATION_KEYS.values() for k in keys}:
            if getattr(config, key, None):
                setattr(config, key, 0.0)
    return changed


def _preset_list() -> str:
    return ", ".join(PRESETS)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- the three sources ------------------------------------------------------------------------


def _from_preset(preset: Preset, config_kwargs: dict[str, Any]) -> tuple[PreTrainedModel, BaseImageProcessor]:
    config = preset.make_config(**config_kwargs)
    model = AutoModelForImageClassification.from_config(config)
    model.name_or_path = model.config.name_or_path = preset.name
    logger.info("Built preset %s (%s parameters, random init).", preset.name, f"{count_parameters(model):,}")
    # A model built at another size (image_size=96) gets a processor producing that size.
    return model, preset.make_processor(image_size=config.image_size)


def _resolve_hub_config(repo_id: str, hub_kwargs: dict[str, Any]) -> None:
    """Fetch (or find in the cache) the repo's config.json, turning Hub failures into our errors."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        hf_hub_download(repo_id, CONFIG_NAME, **hub_kwargs)
    except LocalEntryNotFoundError as e:  # offline / no network, and not cached
        raise HubUnreachableError(
            _unreachable_message(
                repo_id, hub_kwargs.get("revision"), bool(hub_kwargs.get("local_files_only"))
            )
        ) from e
    except GatedRepoError as e:
        raise UnknownModelError(
            f"Hub repo {repo_id!r} is gated: accept its conditions on huggingface.co and set HF_TOKEN "
            "(or pass token=...)."
        ) from e
    except RepositoryNotFoundError as e:
        raise UnknownModelError(
            f"Hub repo {repo_id!r} does not exist or is private (no token given).{did_you_mean(repo_id, PRESETS)}"
            f" Check the spelling, set HF_TOKEN for a private repo, or use a preset ({_preset_list()})."
        ) from e
    except RevisionNotFoundError as e:
        raise UnknownModelError(
            f"Hub repo {repo_id!r} has no revision {hub_kwargs.get('revision')!r}; pass an existing branch, "
            "tag or commit."
        ) from e
    except EntryNotFoundError as e:
        raise UnknownModelError(
            f"Hub repo {repo_id!r} has no {CONFIG_NAME}: it is not a transformers or timm checkpoint."
        ) from e
    except HfHubHTTPError as e:
        raise HubUnreachableError(
            f"The Hugging Face Hub answered with an error for {repo_id!r}: {e}. Retry later, or use a local "
            f"folder or a preset ({_preset_list()})."
        ) from e


def _unreachable_message(repo_id: str, revision: str | None, local_files_only: bool) -> str:
    import huggingface_hub.constants as hub_constants

    if local_files_only:
        why = "local_files_only=True was given"
    elif hub_constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE=1 is set"
    else:
        why = "there is no network connection"
    at = f" at revision {revision!r}" if revision else ""
    return (
        f"Cannot load member {repo_id!r}{at}: the Hugging Face Hub is unreachable ({why}) and the checkpoint "
        f"is not in the local cache ({hub_constants.HF_HUB_CACHE}). Either download it once where the Hub is "
        f"reachable (`hf download {repo_id}`, then copy the cache or the folder here) and pass that local "
        f"folder (config.json + weights + preprocessor_config.json), or use a preset for an offline run "
        f"({_preset_list()})."
    )


def _from_checkpoint(
    source: str,
    taxonomy: Taxonomy,
    label_kwargs: dict[str, Any],
    config_overrides: dict[str, Any],
    hub_kwargs: dict[str, Any],
) -> tuple[PreTrainedModel, BaseImageProcessor]:
    """Load a folder or a (cached/fetched) Hub repo; keep the backbone, fit the head to the taxonomy."""
    if not hub_kwargs and not (Path(source) / CONFIG_NAME).is_file():
        raise UnknownModelError(
            f"Folder {source!r} holds no {CONFIG_NAME}, so it is not a saved model. Point at the folder where "
            "the model was saved (a training run's output dir or one of its checkpoint-N folders)."
        )
    load_kwargs = {k: v for k, v in hub_kwargs.items() if v not in (None, False)}
    try:
        stored = AutoConfig.from_pretrained(source, **load_kwargs)
        if stored.model_type == "timm_wrapper":
            # TimmWrapperConfig takes its size from num_labels (else from the checkpoint), not from id2label.
            label_kwargs = {**label_kwargs, "num_labels": taxonomy.num_sub}
            model_args = dict(getattr(stored, "model_args", None) or {})
            if "num_classes" in model_args:  # timm's save_for_hf records it; it would clash with num_labels
                model_args.pop("num_classes")
                label_kwargs["model_args"] = model_args
        model = AutoModelForImageClassification.from_pretrained(
            source, ignore_mismatched_sizes=True, **{**config_overrides, **label_kwargs}, **load_kwargs
        )
    except (ValueError, KeyError) as e:
        raise UnknownModelError(
            f"Checkpoint {source!r} cannot be loaded as an image classifier: {e}. Use a vision checkpoint "
            f"(ViT, ConvNeXt, Swin, timm/...) or a preset ({_preset_list()})."
        ) from e
    _align_head(model, stored, taxonomy)
    try:
        processor = AutoImageProcessor.from_pretrained(source, **load_kwargs)
    except OSError as e:
        raise UnknownModelError(
            f"Checkpoint {source!r} has a model but no image processor (preprocessor_config.json, or "
            "pretrained_cfg in config.json for timm). Save one beside the weights "
            "(`processor.save_pretrained(folder)`), copying it from the checkpoint the model came from."
        ) from e
    logger.info("Loaded member %s (%s parameters).", source, f"{count_parameters(model):,}")
    return model, processor


def _align_head(model: PreTrainedModel, stored: Any, taxonomy: Taxonomy) -> None:
    """Reorder a kept head whose labels are the taxonomy's in another order; warn about foreign labels."""
    stored_labels = [str(v) for _, v in sorted((int(k), v) for k, v in (stored.id2label or {}).items())]
    wanted = taxonomy.sub_names
    if len(stored_labels) != len(wanted):
        logger.info(
            "Checkpoint head has %d labels, the taxonomy %d: the head is newly initialised (train it).",
            len(stored_labels),
            len(wanted),
        )
        return
    if stored_labels == wanted or all(re.fullmatch(r"LABEL_\d+", s) for s in stored_labels):
        return
    if sorted(stored_labels) != sorted(wanted):
        logger.warning(
            "Checkpoint head has %d labels like the taxonomy but other names (%s...): it is kept and relabelled "
            "with the taxonomy's names; retrain it unless this is intended.",
            len(wanted),
            ", ".join(stored_labels[:3]),
        )
        return
    head = _classifier_layer(model, len(wanted))
    if head is None:
        logger.warning("Checkpoint labels are in another order and its head was not found: retrain the head.")
        return
    order = torch.tensor([stored_labels.index(n) for n in wanted])
    with torch.no_grad():
        head.weight.copy_(head.weight[order])
        if head.bias is not None:
            head.bias.copy_(head.bias[order])
    logger.info("Reordered the checkpoint's head rows to the taxonomy's label order.")


def _classifier_layer(model: nn.Module, num_labels: int) -> nn.Linear | None:
    """The last Linear layer producing ``num_labels`` outputs (the head, whatever the architecture)."""
    found = None
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = module
    return found
