"""Record per-layer, per-head attention probabilities of a :class:`MaskedAutoencoderViT` (or of any
model whose ``blocks`` use timm's ``Attention``, such as a timm VisionTransformer) with forward hooks,
without touching its outputs.

timm's fused attention (``scaled_dot_product_attention``) never materialises the probabilities, so
each block's ``attn.qkv`` projection is hooked: its output is exactly the ``qkv`` the block uses,
and the recorder recomputes ``softmax(q kᵀ · scale)`` from it (after ``q_norm``/``k_norm``, as the
block does). The model runs unchanged, fused or not, and no projection is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import torch
from timm.layers import Attention
from torch import nn

from ..errors import ConfigError

PARTS = ("encoder", "decoder")
#: Attention modules whose probabilities are exactly ``softmax(q_norm(q) k_norm(k)ᵀ · scale)`` of their
#: ``qkv`` output: timm's ``Attention`` (maelens blocks, timm VisionTransformer blocks whatever the model).
RECOMPUTABLE = (Attention,)


@dataclass
class AttentionChunk:
    """One block's attention for the images ``rows`` of the batch: ``probs`` (b, H, N, N), rows =
    queries, CLS first, and ``logits`` the scores before the softmax."""

    part: str
    layer: int
    rows: slice
    probs: torch.Tensor
    logits: torch.Tensor


Reducer = Callable[[AttentionChunk], Any]


def _keep(chunk: AttentionChunk) -> torch.Tensor:
    return chunk.probs


def _concat(chunks: list[Any]) -> Any:
    first = chunks[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(chunks)
    if isinstance(first, dict):
        return {key: _concat([c[key] for c in chunks]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_concat(list(group)) for group in zip(*chunks))
    raise TypeError("reduce must return tensors, or dicts/tuples of tensors, to join chunks; "
                    f"got {type(first).__name__}")


def attention_logits(attn: nn.Module, qkv: torch.Tensor) -> torch.Tensor:
    """(B, H, N, N) scores q kᵀ · scale of a timm ``Attention`` from its ``qkv`` output (B, N, 3·H·d),
    computed as its non-fused path does; their row softmax is the attention."""
    b, n, _ = qkv.shape
    qkv = qkv.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    return (q * attn.scale) @ k.transpose(-2, -1)


def attention_blocks(model: nn.Module, part: str) -> list[nn.Module]:
    """The transformer blocks of ``part`` ("encoder" or "decoder"), in forward order."""
    if part not in PARTS:
        raise ConfigError(f"attention part must be one of {', '.join(PARTS)}, got {part!r}")
    if part == "decoder" and not getattr(model, "has_decoder", False):
        raise ConfigError(
            "this model has no decoder (encoder-only weights): decoder attention needs a full MAE checkpoint"
        )
    blocks = model.blocks if part == "encoder" else model.decoder_blocks
    for i, blk in enumerate(blocks):
        attn = getattr(blk, "attn", None)
        if type(attn) not in RECOMPUTABLE:
            # other attentions add what qkv does not show (relative position biases, separate q/v biases,
            # rotary embeddings ...): their maps cannot be recomputed from qkv, so none is recorded
            raise ConfigError(f"{part} block {i} ({type(blk).__name__}) uses {type(attn).__name__}, not timm's "
                              "Attention: its attention maps cannot be recomputed from its qkv projection")
    return list(blocks)


_Hooks = TypeVar("_Hooks", bound="HookSet")


class HookSet:
    """Forward hooks attached on ``__enter__`` and all removed on exit, on exceptions, and when attaching
    fails half-way: the lifecycle shared by the recorders (:class:`AttentionRecorder`,
    :class:`~maelens.analysis.layer_outputs.BlockRecorder`). Subclasses register their hooks in
    :meth:`_attach` and keep each handle in ``self._handles``."""

    _handles: list[torch.utils.hooks.RemovableHandle]

    def _attach(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Hooks) -> _Hooks:
        try:
            self._attach()
        except BaseException:
            self.detach()
            raise
        return self

    def detach(self) -> None:
        """Remove every hook this recorder attached."""
        while self._handles:
            self._handles.pop().remove()

    def __exit__(self, *exc: object) -> None:
        self.detach()


class AttentionRecorder(HookSet):
    """Context manager that records every block's attention of the chosen parts on each forward.

    ``recorder.maps[part][layer]`` holds what ``reduce`` returned for the latest forward pass, given
    an :class:`AttentionChunk`; by default the probabilities (B, H, N, N) themselves. Pass a
    ``reduce`` that returns small summaries to keep memory flat. Hooks are removed on exit, also on
    exceptions.

    Maps are recomputed over chunks of whole images of at most ``chunk_bytes`` (the model itself
    runs on the full batch): large temporaries get handed back to the system and faulted in again
    at every layer, which costs more than the arithmetic. ``reduce`` must therefore return
    batch-first tensors, or dicts/tuples of them, so that chunks can be concatenated.
    """

    def __init__(self, model: nn.Module, parts: Iterable[str] = ("decoder",), reduce: Reducer | None = None,
                 chunk_bytes: int = 4 << 20):
        self.model = model
        self.parts = tuple(parts)
        self.reduce = reduce or _keep
        self.chunk_bytes = chunk_bytes
        self.blocks = {part: attention_blocks(model, part) for part in self.parts}
        self.maps: dict[str, list[Any]] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.clear()

    def clear(self) -> None:
        """Forget the recorded maps."""
        self.maps = {part: [None] * len(blocks) for part, blocks in self.blocks.items()}

    def _hook(self, part: str, layer: int, attn: nn.Module) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            with torch.no_grad():
                qkv = output.detach()
                map_bytes = attn.num_heads * qkv.shape[1] ** 2 * qkv.element_size()
                batch = qkv.shape[0]
                chunks = -(-batch // max(1, self.chunk_bytes // map_bytes))
                step = -(-batch // chunks)  # equal chunks: no small remainder
                outs = []
                for start in range(0, batch, step):
                    logits = attention_logits(attn, qkv[start:start + step])
                    chunk = AttentionChunk(part, layer, slice(start, start + logits.shape[0]),
                                           logits.softmax(dim=-1), logits)
                    outs.append(self.reduce(chunk))
                self.maps[part][layer] = outs[0] if len(outs) == 1 else _concat(outs)

        return hook

    def _attach(self) -> None:
        for part, blocks in self.blocks.items():
            for layer, blk in enumerate(blocks):
                self._handles.append(blk.attn.qkv.register_forward_hook(self._hook(part, layer, blk.attn)))

__all__ = ["AttentionChunk", "AttentionRecorder", "HookSet", "PARTS", "RECOMPUTABLE", "attention_blocks", "attention_logits"]
