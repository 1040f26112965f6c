"""Every transformer block's output from one forward pass, for analyses that compare layers (CKA,
layer-wise probes, token-norm statistics).

Forward hooks on the blocks of the encoder (and the decoder, where the model has one) record each
block's output tokens (B, 1+K, D), CLS first, as the block returns them: before the final LayerNorm,
which :func:`apply_final_norm` applies on request (the encoder's ``norm``, the decoder's
``decoder_norm``). The model's own outputs are untouched.

Layer names are ``encoder.0`` ... ``encoder.{depth-1}``, then ``decoder.0`` ...; token pooling
(:data:`LAYER_POOLS`) is shared by the analyses:

- ``mean``: mean of the patch tokens (CLS excluded), one row per image;
- ``cls``: the CLS token, one row per image;
- ``tokens``: every patch token a row of its own (B·K rows of D features);
- ``flatten``: the patch tokens of an image concatenated (one row of K·D features per image).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..choices import LAYER_PART_CHOICES, LAYER_POOLS
from ..errors import ConfigError
from ..models.mae import MaskedAutoencoderViT
from .hooks import HookSet

LAYER_PARTS = ("encoder", "decoder")

__all__ = ["LAYER_PARTS", "LAYER_POOLS", "BlockRecorder", "adapt_images", "apply_final_norm",
           "layer_blocks", "layer_names", "pool_layer", "resolve_parts", "run_layers"]


def layer_blocks(model: MaskedAutoencoderViT, parts: Iterable[str] = ("encoder",)) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` of every transformer block of ``parts``, in forward order."""
    out = []
    for part in parts:
        if part not in LAYER_PARTS:
            raise ConfigError(f"layer part must be one of {', '.join(LAYER_PARTS)}, got {part!r}")
        if part == "decoder" and not model.has_decoder:
            raise ConfigError("this model has no decoder (encoder-only weights): decoder layers need a full MAE "
                              "checkpoint")
        blocks = model.blocks if part == "encoder" else model.decoder_blocks
        out.extend((f"{part}.{i}", blk) for i, blk in enumerate(blocks))
    return out


def layer_names(model: MaskedAutoencoderViT, parts: Iterable[str] = ("encoder",)) -> list[str]:
    """Names of the blocks of ``parts``: ``encoder.0``, ..., ``decoder.0``, ..."""
    return [name for name, _ in layer_blocks(model, parts)]


class BlockRecorder(HookSet):
    """Context manager recording each block's output tokens (B, N, D) on every forward pass.

    ``recorder.outputs[name]`` holds what ``reduce`` returned for the latest pass (by default the
    detached tokens themselves). Hooks are removed on exit, also on exceptions.
    """

    def __init__(self, model: MaskedAutoencoderViT, parts: Iterable[str] = ("encoder",),
                 reduce: Callable[[str, torch.Tensor], object] | None = None):
        self.blocks = layer_blocks(model, parts)
        self.reduce = reduce or (lambda name, tokens: tokens)
        self.outputs: dict[str, object] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.outputs[name] = self.reduce(name, output.detach())

        return hook

    def _attach(self) -> None:
        for name, blk in self.blocks:
            self._handles.append(blk.register_forward_hook(self._hook(name)))


@torch.no_grad()
def run_layers(model: MaskedAutoencoderViT, imgs: torch.Tensor, parts: Sequence[str] = ("encoder",), *,
               mask_ratio: float = 0.0, masking: str = "random", noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Block outputs (B, 1+K, D) of ``parts`` for ``imgs`` (B, 3, S, S), in :func:`layer_names` order.

    ``mask_ratio=0`` runs the encoder on every patch (an MAE encoder normally sees only the visible
    ones); the decoder, when asked for, runs on the encoder's normalised output as in pretraining.
    """
    names = layer_names(model, parts)
    with BlockRecorder(model, parts) as rec:
        out = model.encode(imgs, mask_ratio, noise, masking=masking, generator=generator)
        if "decoder" in parts:
            model.forward_decoder(out.tokens, out.ids_restore)
    return [rec.outputs[name] for name in names]


def apply_final_norm(model: MaskedAutoencoderViT, name: str, tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` of layer ``name`` through its part's final LayerNorm (``norm`` or ``decoder_norm``), as
    the model normalises its last block's output; intermediate layers get the same norm (DINOv2's
    ``get_intermediate_layers(norm=True)`` convention). A global-pool fine-tuned encoder has no final norm
    (an identity), so there the normalised and raw tokens coincide."""
    norm = model.norm if name.startswith("encoder.") else model.decoder_norm
    return norm(tokens)


def pool_layer(tokens: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, 1+K, D) block output -> rows of features (see the module docstring for each ``pool``)."""
    if pool == "mean":
        return tokens[:, 1:].mean(dim=1)
    if pool == "cls":
        return tokens[:, 0]
    if pool == "tokens":
        return tokens[:, 1:].reshape(-1, tokens.shape[-1])
    if pool == "flatten":
        return tokens[:, 1:].flatten(1)
    raise ConfigError(f"token pooling must be one of {', '.join(LAYER_POOLS)}, got {pool!r}")


def adapt_images(imgs: torch.Tensor, source: MaskedAutoencoderViT, target: MaskedAutoencoderViT) -> torch.Tensor:
    """Images normalised for ``source`` (B, 3, S, S) as ``target`` expects them: de-normalised with
    ``source``'s mean and std, resized (bilinear, antialiased) to ``target``'s input size and normalised
    with ``target``'s statistics, so that two models compare on the same pictures."""
    a, b = source.config, target.config
    if a.img_size == b.img_size and tuple(a.norm_mean) == tuple(b.norm_mean) and tuple(a.norm_std) == tuple(b.norm_std):
        return imgs

    def stats(values: Sequence[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=imgs.dtype, device=imgs.device)[:, None, None]

    pixels = imgs * stats(a.norm_std) + stats(a.norm_mean)
    if a.img_size != b.img_size:
        pixels = F.interpolate(pixels, size=(b.img_size, b.img_size), mode="bilinear", align_corners=False,
                               antialias=True)
    return (pixels - stats(b.norm_mean)) / stats(b.norm_std)


#: What a ``--parts`` option may say: ``auto`` is the encoder, and the decoder where the model has one.


def resolve_parts(model: MaskedAutoencoderViT, parts: str = "auto") -> tuple[str, ...]:
    """The parts ``parts`` stands for on ``model`` (``all`` needs a decoder; ``auto`` takes it when present)."""
    if parts not in LAYER_PART_CHOICES:
        raise ConfigError(f"layer parts must be one of {', '.join(LAYER_PART_CHOICES)}, got {parts!r}")
    if parts == "auto":
        return ("encoder", "decoder") if model.has_decoder else ("encoder",)
    if parts == "all":
        layer_blocks(model, LAYER_PARTS)  # refuses a model without a decoder
        return LAYER_PARTS
    return (parts,)
