"""Building an MAE from a configuration and a state dict in the official names, with every missing,
unexpected or misshapen tensor named: the last step of every checkpoint loader (:mod:`.store`, :mod:`.timm_vit`)."""

from __future__ import annotations

import torch

from ..errors import CheckpointError
from ..models.mae import EncoderHead, MaskedAutoencoderViT
from ..models.presets import ModelConfig
from .layouts import name_list
from .resize import POSITION_TABLES


def build_model(config: ModelConfig, state: dict[str, torch.Tensor], where: str,
                notes: list[str] | None = None, *, head: EncoderHead | None = None) -> MaskedAutoencoderViT:
    """A model for ``config`` (and fine-tuned pooling ``head``) holding ``state`` (official names); missing
    and unexpected tensors are named, and so is every tensor of the wrong shape."""
    notes = notes if notes is not None else []
    model = MaskedAutoencoderViT(config, head=head)
    expected = model.state_dict()
    unexpected = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    required = [k for k in missing if k not in POSITION_TABLES]
    if unexpected or required:
        what = f"a {config.name} MAE" if config.has_decoder else f"a {config.name} encoder"
        detail = []
        if required:
            detail.append(f"lacks tensor(s) {name_list(required)}")
        if unexpected:
            detail.append(f"has tensors {what} does not use: {name_list(unexpected)}")
        raise CheckpointError(f"{where} does not fit {what}: it {'; it '.join(detail)}")
    if missing:
        notes.append(f"{', '.join(missing)} not stored: using the fixed 2-D sin-cos table")
    wrong = [f"{k} {tuple(t.shape)} (expected {tuple(expected[k].shape)})" for k, t in state.items()
             if tuple(t.shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(f"{where}: tensor(s) of the wrong shape for the {config.name} model: {name_list(wrong)}")
    model.load_state_dict(state, strict=False)
    return model


__all__ = ["build_model"]
