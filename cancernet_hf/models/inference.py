"""Logits of one model over a dataset, with the same eval preprocessing as training and the pipeline.

Used by evaluation (metrics, calibration) and the ensemble builder (fitting weights/temperatures on
validation logits), so every consumer sees identical numbers for the same member and split.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from ..data.transforms import prepare_dataset
from ..taxonomy import MULTI_CANCER

logger = logging.getLogger(__name__)


def predict_logits(
    model: PreTrainedModel,
    processor: Any,
    dataset: Any,
    *,
    batch_size: int = 64,
    progress: bool = True,
    num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits float32 (N, num_labels), labels int64 (N,))`` for a `datasets.Dataset` with an image column.

    Eval transforms of `processor`, `torch.inference_mode`, the model's own device; rows follow the
    dataset order. Labels are -1 when the dataset has no ``label`` column. The model's train/eval
    mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    has_labels = "label" in dataset.column_names
    # Eval transforms use no label-dependent rule, so the taxonomy does not matter here.
    prepared = prepare_dataset(dataset, processor, MULTI_CANCER, train=False)
    # Whole batches go through the transform at once (one processor call per batch).
    loader = DataLoader(
        prepared,
        sampler=BatchSampler(SequentialSampler(prepared), batch_size=batch_size, drop_last=False),
        batch_size=None,
        collate_fn=_stack,
        num_workers=num_workers,
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress):
                out = model(pixel_values=batch["pixel_values"].to(device))
                logits.append(out.logits.float().cpu().numpy())
                if has_labels:
                    labels.append(batch["labels"].numpy())
    finally:
        model.train(was_training)
    num_labels = int(model.config.num_labels)
    all_logits = np.concatenate(logits) if logits else np.zeros((0, num_labels), np.float32)
    all_labels = (
        np.concatenate(labels).astype(np.int64) if has_labels and labels else np.full(len(all_logits), -1)
    )
    return all_logits.astype(np.float32, copy=False), all_labels.astype(np.int64, copy=False)


def _stack(batch: dict[str, list]) -> dict[str, torch.Tensor]:
    out = {"pixel_values": torch.stack(list(batch["pixel_values"]))}
    if "labels" in batch:
        out["labels"] = torch.as_tensor(batch["labels"], dtype=torch.long)
    return out
