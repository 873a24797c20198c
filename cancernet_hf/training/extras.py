"""The timm-style extras, usable from both loops: mixup/cutmix, an EMA of the weights, layer-wise LR decay.

Each is off unless its flag is set (`--mixup_alpha/--cutmix_alpha`, `--ema_decay`, `--layer_decay`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import torch

logger = logging.getLogger(__name__)

# Parameters that never get weight decay (as in transformers' Trainer and timm).
NO_DECAY_PATTERN = re.compile(
    r"(bias|norm|layernorm|layer_norm|ln_|\.ln|cls_token|position_embeddings|pos_embed)", re.IGNORECASE
)


# ---- mixup / cutmix -----------------------------------------------------------------------------------
class BatchMixer:
    """timm's `Mixup` on a (pixel_values, labels) batch, returning soft targets for `summed_loss`.

    timm needs an even batch; an odd one (the last of an epoch) is left unmixed with the same
    label smoothing, so every sample still gets a target distribution.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        mixup_alpha: float,
        cutmix_alpha: float,
        prob: float,
        label_smoothing: float,
    ) -> None:
        from timm.data import Mixup

        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self._mixup = Mixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=prob,
            label_smoothing=label_smoothing,
            num_classes=num_classes,
        )

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if labels.ndim != 1:
            raise ValueError(f"BatchMixer expects (B,) class ids, got labels of shape {tuple(labels.shape)}")
        if len(labels) % 2 == 0:
            return self._mixup(pixel_values.clone(), labels)
        off = self.label_smoothing / self.num_classes
        targets = torch.full((len(labels), self.num_classes), off, device=labels.device)
        targets.scatter_(1, labels[:, None], 1.0 - self.label_smoothing + off)
        return pixel_values, targets


# ---- EMA of weights -----------------------------------------------------------------------------------
class WeightEma:
    """Exponential moving average of a model's floating-point parameters and buffers.

    `state_dict`/`load_state_dict` make it checkpointable (Accelerate's `register_for_checkpointing`,
    or a file in each Trainer checkpoint); `swapped(model)` evaluates with the averaged weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        # Warm-up as in timm/TF: the average follows the weights closely during the first updates.
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().to(self.shadow[k].dtype), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v)

    @contextlib.contextmanager
    def swapped(self, model: torch.nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights (evaluation), then restore the trained ones."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                state = model.state_dict()
                for k, v in backup.items():
                    state[k].copy_(v)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.num_updates = state["num_updates"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


# ---- layer-wise learning-rate decay -------------------------------------------------------------------
def block_ids(model: torch.nn.Module) -> tuple[dict[str, int], int]:
    """Depth id of every trainable parameter: 0 = embeddings, 1..L = blocks in forward order, L+1 = head.

    A block is an element of an `nn.ModuleList` (the deepest one holding the parameter: `vit.layers.3`,
    `convnext.encoder.stages.1.layers.0`, `swin.encoder.layers.0.blocks.1`; a stage's downsampling
    counts as its own block), numbered in the order `named_parameters` lists them, so any model
    whose blocks live in ModuleLists works without a per-architecture table.
    """
    prefixes = {
        f"{name}.{child}" if name else child
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        for child in module._modules
    }
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    keys: list[str | None] = []
    for name in names:
        parts = name.split(".")
        found = [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in prefixes]
        keys.append(found[-1] if found else None)
    order: dict[str, int] = {}
    for key in keys:
        if key is not None and key not in order:
            order[key] = len(order) + 1
    num_blocks = len(order)
    first_block = next((i for i, k in enumerate(keys) if k is not None), len(names))
    ids = {}
    for i, (name, key) in enumerate(zip(names, keys)):
        if key is not None:
            ids[name] = order[key]
        else:
            ids[name] = 0 if i < first_block else num_blocks + 1
    return ids, num_blocks


def param_groups(
    model: torch.nn.Module, *, lr: float, weight_decay: float, layer_decay: float | None = None
) -> list[dict]:
    """AdamW parameter groups: no decay on biases/norms/embeddings; optional layer-wise LR decay.

    The per-layer scale is folded into each group's `lr` (no `lr_scale` key): transformers' schedulers
    multiply each group's initial `lr`, so a separate `lr_scale` (timm's convention, applied only by
    timm's own schedulers) would be silently ignored and every layer would get the same rate.
    """
    ids, num_blocks = block_ids(model) if layer_decay is not None else ({}, 0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or NO_DECAY_PATTERN.search(name) is not None
        depth = ids.get(name, 0)
        key = (depth, no_decay)
        if key not in groups:
            scale = layer_decay ** (num_blocks + 1 - depth) if layer_decay is not None else 1.0
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr": lr * scale,
            }
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    out = [groups[k] for k in sorted(groups)]
    if layer_decay is not None:
        logger.info(
            "layer-wise lr decay %.3g over %d blocks: lr %.3g (embeddings) .. %.3g (head)",
            layer_decay,
            num_blocks,
            out[0]["lr"],
            out[-1]["lr"],
        )
    for g in out:
        g.pop("names")
    return out


ACCELERATE_OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "sgd")


def build_optimizer(model: torch.nn.Module, args) -> torch.optim.Optimizer:
    """AdamW (or SGD) with the TrainingArguments' lr, betas, eps and weight decay (+ layer decay when set).

    The Trainer path only calls this for layer decay (else Trainer builds any `--optim`); the
    Accelerate loop always does, so it supports the two optimisers named in ACCELERATE_OPTIMIZERS.
    """
    from ..errors import TrainingSetupError

    optim = str(getattr(args.optim, "value", args.optim))
    groups = param_groups(
        model, lr=args.learning_rate, weight_decay=args.weight_decay, layer_decay=args.layer_decay
    )
    if optim == "sgd":
        return torch.optim.SGD(groups, lr=args.learning_rate)
    if optim.startswith("adamw_torch"):
        return torch.optim.AdamW(
            groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
        )
    raise TrainingSetupError(
        f"--optim {optim!r} is not available here: the Accelerate loop and --layer_decay build "
        f"{list(ACCELERATE_OPTIMIZERS)}; use one of them, or the Trainer path without --layer_decay."
    )
