"""Model weights split into small half-precision parts, for transports that cap the size and number of
files (the GPU machine of ``benchmarks/gpu_check.py`` returns at most 8 files of at most 16 MiB each).

A split folder holds ``NAME.json`` (the model's config, the parts in order, every tensor's name, shape
and stored dtype, and each part's SHA-256) and ``NAME.partK.pt``: plain ``{name: tensor}`` dicts saved
with ``torch.save`` and read back with ``weights_only=True``. Floating tensors are stored as float16
(ipol64: 8.9 M parameters, 18 MB as float16, two parts); :func:`load_split` checks the hashes, casts back
to float32 and builds the model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io import atomic_path, write_json
from ..models.mae import MaskedAutoencoderViT
from ..models.presets import ModelConfig

#: The largest part written by default: 16 MiB.
MAX_PART_BYTES = 16 << 20
#: Room kept in each part for torch.save's own records (names, storage headers).
_OVERHEAD_BYTES = 64 << 10


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_split(model: MaskedAutoencoderViT, folder: str | Path, name: str = "weights", *,
               max_part_bytes: int = MAX_PART_BYTES, dtype: torch.dtype = torch.float16) -> list[Path]:
    """Write ``model``'s weights to ``folder`` as ``NAME.json`` and parts of at most ``max_part_bytes``
    (floating tensors cast to ``dtype``); returns the files written, the manifest last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    budget = max_part_bytes - _OVERHEAD_BYTES
    parts: list[dict[str, torch.Tensor]] = [{}]
    used = 0
    tensors: list[dict[str, Any]] = []
    for key, value in model.state_dict().items():
        tensor = value.detach().to("cpu", dtype if value.is_floating_point() else value.dtype).contiguous()
        size = tensor.numel() * tensor.element_size()
        if size > budget:
            raise ValueError(f"max_part_bytes={max_part_bytes} is smaller than the tensor {key} ({size} bytes)")
        if used + size > budget and parts[-1]:
            parts.append({})
            used = 0
        parts[-1][key] = tensor.clone()  # its own storage: a view would save the whole base tensor
        used += size
        tensors.append({"name": key, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
                        "part": len(parts) - 1})
    written = []
    for k, part in enumerate(parts):
        path = folder / f"{name}.part{k}.pt"
        with atomic_path(path) as tmp:
            torch.save(part, tmp)
        written.append(path)
    manifest = {"format": "maelens-split-weights", "version": 1, "config": model.config.to_dict(),
                "parts": [{"file": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size} for p in written],
                "tensors": tensors}
    write_json(folder / f"{name}.json", manifest)
    return [*written, folder / f"{name}.json"]


def load_split(folder: str | Path, name: str = "weights", device: str | torch.device = "cpu") -> MaskedAutoencoderViT:
    """The model saved by :func:`save_split` in ``folder``, in float32 and eval mode; a missing or altered
    part, or a manifest that does not describe the parts, is a :class:`~maelens.errors.CheckpointError`."""
    folder = Path(folder)
    manifest_path = folder / f"{name}.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{manifest_path}: not a readable split-weights manifest ({err})") from err
    if manifest.get("format") != "maelens-split-weights":
        raise CheckpointError(f"{manifest_path}: not a maelens split-weights manifest")
    state: dict[str, torch.Tensor] = {}
    for part in manifest["parts"]:
        path = folder / part["file"]
        if not path.is_file():
            raise CheckpointError(f"{path}: missing part of the split weights in {folder}")
        if _sha256(path) != part["sha256"]:
            raise CheckpointError(f"{path}: its SHA-256 differs from the manifest's (truncated or altered)")
        state.update(torch.load(path, map_location="cpu", weights_only=True))
    expected = {t["name"]: t["shape"] for t in manifest["tensors"]}
    got = {k: list(v.shape) for k, v in state.items()}
    if got != expected:
        raise CheckpointError(f"{manifest_path}: the parts hold {len(got)} tensors, the manifest lists {len(expected)}"
                              f" (or their shapes differ)")
    model = MaskedAutoencoderViT(ModelConfig.from_dict(manifest["config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval()


__all__ = ["MAX_PART_BYTES", "load_split", "save_split"]
