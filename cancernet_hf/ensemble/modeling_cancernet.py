"""The CancerNet ensemble as one transformers image classifier.

Remote code: imports only torch, transformers and its sibling configuration file.

Input: RGB pixels in [0, 1] at `config.image_size`. Each member resizes them to its own size and
normalises them with its own mean/std inside `forward`, so members of any family (ViT, ConvNeXt,
Swin, timm through transformers) mix freely. Output `logits` are the log of the weighted mean of
the members' temperature-scaled softmax probabilities: a softmax over them gives the ensemble's
probabilities back, so the stock `image-classification` pipeline reports them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CONFIG_MAPPING, AutoModelForImageClassification, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_cancernet import CancerNetEnsembleConfig


@dataclass
class CancerNetEnsembleOutput(ModelOutput):
    """`logits`: log ensemble probabilities (B, L); `member_probs`: (B, M, L) when asked for."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    member_probs: torch.FloatTensor | None = None


def member_config_from_dict(config_dict: dict):
    """Rebuild a member's config object from the dict stored in the ensemble config.

    `from_dict` (not the constructor) so that configs with their own dict format (timm's
    `num_classes`/`label_names`) come back with the right label count.
    """
    model_type = config_dict["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"Member model type {model_type!r} is unknown to this transformers version; upgrade transformers."
        )
    return CONFIG_MAPPING[model_type].from_dict(dict(config_dict))


class CancerNetEnsemblePreTrainedModel(PreTrainedModel):
    config_class = CancerNetEnsembleConfig
    base_model_prefix = "ensemble"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False

    def _init_weights(self, module: nn.Module) -> None:
        # The ensemble owns no parameters: each member is a PreTrainedModel and transformers dispatches
        # to the member's own `_init_weights` (which also rebuilds its non-persistent buffers). Doing
        # anything here would overwrite weights loaded from the checkpoint.
        return


class CancerNetEnsembleForImageClassification(CancerNetEnsemblePreTrainedModel):
    def __init__(self, config: CancerNetEnsembleConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.members = nn.ModuleList(
            AutoModelForImageClassification.from_config(member_config_from_dict(c))
            for c in config.member_configs
        )
        self.post_init()

    def _member_input(self, pixel_values: torch.Tensor, index: int) -> torch.Tensor:
        """Centre-crop and resize as the member's own processor does, then normalise with its mean/std.

        Computed in float32 (antialiased resizing has no bfloat16 kernel on CPU, and the pixels are cheap
        next to the member), then cast to the member's own dtype so bf16/fp16 members run natively.
        """
        height, width = self.config.member_image_sizes[index]
        x = pixel_values.float()
        fraction = self.config.member_crop_fractions[index]
        if fraction < 1.0:
            in_h, in_w = x.shape[-2:]
            crop_h, crop_w = max(1, round(in_h * fraction)), max(1, round(in_w * fraction))
            top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
            x = x[..., top : top + crop_h, left : left + crop_w]
        if tuple(x.shape[-2:]) != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.config.member_image_means[index], dtype=x.dtype, device=x.device)
        std = torch.tensor(self.config.member_image_stds[index], dtype=x.dtype, device=x.device)
        member_dtype = next(self.members[index].parameters()).dtype
        return ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).to(member_dtype)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_member_probs: bool = False,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CancerNetEnsembleOutput | tuple:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(
                f"CancerNet ensemble expects pixel_values of shape (batch, 3, height, width) in [0, 1], "
                f"got {tuple(pixel_values.shape)}."
            )
        temperatures = self.config.member_temperatures
        log_weights = torch.log(
            torch.tensor(self.config.normalised_weights, dtype=torch.float32, device=pixel_values.device)
        )
        member_log_probs = []
        for index, member in enumerate(self.members):
            member_logits = member(pixel_values=self._member_input(pixel_values, index)).logits
            member_log_probs.append(F.log_softmax(member_logits.float() / temperatures[index], dim=-1))
        stacked = torch.stack(member_log_probs, dim=1)  # (B, M, L)
        # log(sum_m w_m p_m), computed in log space: exact, and zero weights (-inf) drop out.
        logits = torch.logsumexp(stacked + log_weights.view(1, -1, 1), dim=1)

        loss = F.nll_loss(logits, labels.to(logits.device)) if labels is not None else None
        member_probs = stacked.exp() if output_member_probs else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            output = (logits,) + ((member_probs,) if member_probs is not None else ())
            return ((loss,) + output) if loss is not None else output
        return CancerNetEnsembleOutput(loss=loss, logits=logits, member_probs=member_probs)


CancerNetEnsembleForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "CancerNetEnsembleForImageClassification",
    "CancerNetEnsembleOutput",
    "CancerNetEnsemblePreTrainedModel",
    "member_config_from_dict",
]
