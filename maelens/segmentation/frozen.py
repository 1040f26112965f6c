"""The frozen-encoder arm of a segmentation comparison: the encoder's weights stay as they are and only the
linear decoder is trained (the segmentation form of MAE's linear probing, He et al. 2022, sec. 4: a probe of
what pretraining put into the patch tokens; issue 24 runs it beside full fine-tuning, and on a randomly
initialised encoder as a baseline).

Because the encoder never changes, its patch tokens are computed once per image (evaluation transform, no
augmentation) and the decoder is trained on them: the cost of one encoder pass instead of one per epoch. The
training and the evaluation are the fine-tuning's (:mod:`.loop`): AdamW, per-iteration warm-up then cosine lr
(:func:`maelens.train.schedule.lr_at`), the pixel cross-entropy of the bilinearly upsampled class maps (IPOL
Fig. 12's quantity) and the confusion-matrix scores (:mod:`.metrics`) after every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..train.schedule import lr_at, set_lr
from .evaluation import pixel_cross_entropy
from .metrics import IGNORE_INDEX, ConfusionMeter
from .model import Segmenter


@dataclass
class FrozenResult:
    """Per-epoch ``history`` (``train_loss``, ``eval_loss``, ``pixel_accuracy``, ``miou``) and the ``final`` one."""

    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def encode(segmenter: Segmenter, dataset: Dataset, batch_size: int = 64,
           device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Patch tokens (N, L, D) of every image of ``dataset`` (items ``(image, mask)``) and the masks (N, H, W)."""
    segmenter.eval().to(device)
    tokens, masks = [], []
    for imgs, m in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        tokens.append(segmenter.patch_tokens(imgs.to(device)).float().cpu())
        masks.append(m)
    return torch.cat(tokens), torch.cat(masks)


def _logits(segmenter: Segmenter, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    maps = segmenter.decoder(tokens, segmenter.encoder.grid_size)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def _evaluate(segmenter: Segmenter, tokens: torch.Tensor, masks: torch.Tensor, batch_size: int) -> dict[str, float]:
    segmenter.decoder.eval()
    meter = ConfusionMeter(segmenter.num_classes)
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        logits = _logits(segmenter, tokens[i:i + batch_size], masks.shape[-2:])
        target = masks[i:i + batch_size]
        total += float(pixel_cross_entropy(logits, target, reduction="sum"))
        count += int((target != IGNORE_INDEX).sum())
        meter.update(logits, target)
    s = meter.scores()
    return {"eval_loss": total / count if count else float("nan"), "pixel_accuracy": s.pixel_accuracy,
            "miou": s.miou}


def train_frozen_decoder(segmenter: Segmenter, train_data: Dataset, eval_data: Dataset, *, epochs: int,
                         batch_size: int, lr: float, weight_decay: float = 0.0, warmup_epochs: float = 1.0,
                         seed: int = 0, device: torch.device | str = "cpu") -> FrozenResult:
    """Train ``segmenter``'s decoder on its frozen encoder's tokens of ``train_data`` for ``epochs`` (AdamW at
    peak ``lr``, warm-up then cosine), evaluating on ``eval_data`` after every epoch (both datasets with the
    evaluation transform). The encoder's weights are left untouched (``requires_grad`` off)."""
    segmenter.encoder.requires_grad_(False)
    x_train, y_train = encode(segmenter, train_data, device=device)
    x_eval, y_eval = encode(segmenter, eval_data, device=device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(segmenter.decoder.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, len(x_train) // batch_size)
    result = FrozenResult()
    for epoch in range(epochs):
        # one pass over the cached tokens in a seeded order, per-iteration lr
        segmenter.decoder.train()
        order = torch.randperm(len(x_train), generator=generator)
        losses = []
        for step in range(steps):
            set_lr(optimizer, lr_at(epoch + step / steps, peak_lr=lr, epochs=epochs, warmup_epochs=warmup_epochs))
            idx = order[step * batch_size:(step + 1) * batch_size]
            loss = pixel_cross_entropy(_logits(segmenter, x_train[idx].to(device), y_train.shape[-2:]),
                                       y_train[idx].to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                  **_evaluate(segmenter, x_eval.to(device), y_eval.to(device), batch_size)}
        result.history.append(record)
    result.final = dict(result.history[-1]) if result.history else {}
    segmenter.eval()
    return result


__all__ = ["FrozenResult", "encode", "train_frozen_decoder"]
