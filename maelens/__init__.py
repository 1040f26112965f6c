"""maelens: pretrain, load and dissect masked autoencoders (MAE).

Public API: :func:`create_model`, :func:`load_model`, :func:`load_checkpoint`, :class:`MaelensError`;
analyses live in :mod:`maelens.analysis`, datasets in :mod:`maelens.data`, the trainer in
:mod:`maelens.train`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__
from .errors import CheckpointError, ConfigError, DataError, MaelensError

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint, load_model, save_checkpoint
    from .models import MaskedAutoencoderViT, ModelConfig, create_model

# Imported on first use: the models and checkpoint I/O pull in torch and timm (seconds), which the
# command line's parser and its numpy-only commands never need (issue 15).
_LAZY = {"load_model": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
         "create_model": "models", "MaskedAutoencoderViT": "models", "ModelConfig": "models"}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "CheckpointError", "ConfigError", "DataError", "MaelensError", "MaskedAutoencoderViT", "ModelConfig",
    "__version__", "create_model", "load_checkpoint", "load_model", "save_checkpoint",
]
