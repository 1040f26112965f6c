"""Locating checkpoint files and reading them safely: ``torch.load(weights_only=True)`` with an
allow-list of exactly ``argparse.Namespace`` (the official MAE training ``args``), or safetensors.
Nothing is ever unpickled outside that allow-list."""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import run_files
from ..errors import CheckpointError
from ..paths import check_input
from ..validation import escape

#: Globals a checkpoint may need beyond tensors and plain types (the official ``args`` namespace).
SAFE_GLOBALS = (argparse.Namespace,)
#: Weight files looked for, in this order, inside a Hugging Face style directory.
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
#: Largest JSON configuration or index read (a ViTMAE config.json is about 1 KB, a shard index about 100 KB).
MAX_JSON_BYTES = 64 << 20
#: The latest checkpoint that ``maelens train`` keeps in a run directory.
RUN_CHECKPOINT = run_files.CHECKPOINT


@dataclass
class Source:
    """Where the weights are: ``weights`` the file to read and, for a model directory, its
    ``config.json`` / ``preprocessor_config.json`` when present."""

    path: Path
    weights: Path
    config_json: Path | None = None
    preprocessor_json: Path | None = None


def locate(path: str | Path) -> Source:
    """Resolve a user path to its weights: a file, a ``config.json`` inside a model directory, or a
    directory (Hugging Face weights, a ``maelens train`` run's ``checkpoint.pt``, or its only weight file)."""
    p = check_input(path, "checkpoint", error=CheckpointError)
    if p.is_file() and p.name == "config.json":
        return _locate_in_directory(p.parent, p)
    if p.is_dir():
        return _locate_in_directory(p, p)
    folder = p.parent
    return Source(path=p, weights=p, config_json=_optional(folder / "config.json"),
                  preprocessor_json=_optional(folder / "preprocessor_config.json"))


def _optional(p: Path) -> Path | None:
    return p if p.is_file() else None


def is_temporary(path: Path) -> bool:
    """True for a hidden file, such as the ``.NAME.<random>.SUFFIX`` an interrupted atomic save leaves
    (:func:`maelens.io.atomic_path`): never a weight file to load, whatever its suffix."""
    return path.name.startswith(".")


def _locate_in_directory(folder: Path, shown: Path) -> Source:
    config_json = _optional(folder / "config.json")
    preprocessor_json = _optional(folder / "preprocessor_config.json")
    for name in HF_WEIGHT_FILES + (RUN_CHECKPOINT,):
        if os.path.lexists(folder / name):  # a folder, FIFO or dangling link under a weight file's name: refused
            check_input(folder / name, "weight file", error=CheckpointError, directory=False)
            return Source(shown, folder / name, config_json, preprocessor_json)
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix in TORCH_SUFFIXES]
    candidates = sorted(f for f in files if not is_temporary(f))
    if len(candidates) == 1:
        return Source(shown, candidates[0], config_json, preprocessor_json)
    found = f"{len(candidates)} candidate files" if candidates else "no weight file"
    skipped = len(files) - len(candidates)
    if skipped:
        found += f" (besides {skipped} hidden temporary file(s), e.g. left by an interrupted save)"
    raise CheckpointError(
        f"directory {folder} holds {found}: expected model.safetensors, pytorch_model.bin, {RUN_CHECKPOINT} "
        "or a single .pt/.pth file"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or a CheckpointError naming the file."""
    check_input(path, "JSON file", error=CheckpointError, directory=False)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes, too large for a configuration file "
                              f"(at most {MAX_JSON_BYTES:,})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise CheckpointError(f"{path} is not a readable JSON file (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object, found {type(data).__name__}")
    return data


def read_weights(path: Path) -> Any:
    """The object stored in a weight file: a torch checkpoint (safely), safetensors, or shards."""
    if path.name.endswith(".index.json"):
        return _read_shards(path)
    if _looks_like_safetensors(path):
        return _read_safetensors(path)
    return safe_torch_load(path)


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index} has no 'weight_map' naming the shard files")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or not shard or Path(shard).name != shard:
            raise CheckpointError(f"{index}: 'weight_map' must name shard files in its folder, got {escape(repr(shard))}")
        shard_path = check_input(index.parent / shard, f"shard listed in {index.name}", error=CheckpointError,
                                 directory=False)
        part = read_weights(shard_path)
        if not isinstance(part, dict):
            raise CheckpointError(f"shard {shard_path} does not hold a dict of tensors")
        state.update(part)
    return state


def _looks_like_safetensors(path: Path) -> bool:
    """A ``.safetensors`` name, or (any name) an 8-byte little-endian header length then a JSON ``{``."""
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


#: Bytes per element of each safetensors dtype.
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8}
#: Largest safetensors header read (the safetensors library's own limit).
_SAFETENSORS_MAX_HEADER = 100_000_000


def check_safetensors_header(path: Path) -> None:
    """Refuse a safetensors file whose header lies (issue 29): a header length past the end of the file, a
    header that is not a JSON object of tensors, or a tensor whose offsets point outside the data, overlap
    another's or disagree with its dtype and shape. Only the header is read."""
    size = path.stat().st_size
    bad = f"{path} is not a valid safetensors file"
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{bad}: {size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > _SAFETENSORS_MAX_HEADER:
            raise CheckpointError(f"{bad}: its header length {n:,} points past the end of the file ({size:,} bytes)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise CheckpointError(f"{bad}: its {n:,}-byte header is not JSON (the header length may point into "
                                  "the data)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{bad}: its header is not a JSON object")
    data, spans = size - 8 - n, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            count = math.prod(entry["shape"])
            ok = (all(isinstance(v, int) and v >= 0 for v in (begin, end, *entry["shape"]))
                  and entry["dtype"] in _SAFETENSORS_BYTES and 0 <= begin <= end <= data
                  and end - begin == count * _SAFETENSORS_BYTES[entry["dtype"]])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{bad}: tensor {escape(str(name))[:80]} has an entry ({escape(str(entry))[:120]}) "
                                  f"that does not fit the {data:,} bytes of data after the header")
        spans.append((begin, end))
    spans.sort()
    for (_, end), (begin, _) in zip(spans, spans[1:]):
        if begin < end:
            raise CheckpointError(f"{bad}: two tensors share the bytes {begin:,} to {end:,} of its data")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_safetensors_header(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from None


_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")
_OPCODE = re.compile(r"Unsupported operand (\d+)")
_ENFORCE = re.compile(r"^\[enforce fail at [^\]]*\]\s*\.?\s*")


def check_zip_integrity(path: Path) -> None:
    """Refuse a zip-format torch file whose archive is damaged: truncated, or an entry whose CRC-32 does not
    match its data (torch does not check it, and a flipped byte in a weight would load as a wrong number,
    issue 30). Reads the file once; legacy (non-zip) pickles have no checksum and pass."""
    with path.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as err:
        raise CheckpointError(f"{path} is a damaged or truncated checkpoint (its zip archive cannot be read: "
                              f"{_short(str(err))})") from None
    if damaged is not None:
        raise CheckpointError(f"{path} is a damaged checkpoint: the CRC-32 of {escape(damaged.split('/', 1)[-1])} "
                              "does not match its data (the file was altered or corrupted since it was written)")


def safe_torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` allowing only :data:`SAFE_GLOBALS`; unsafe pickles are refused.
    A zip archive's checksums are verified first (:func:`check_zip_integrity`)."""
    check_zip_integrity(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unpickling_error(path, str(err)) from None
    except (RuntimeError, KeyError, EOFError, ValueError, OSError, AttributeError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path} is not a PyTorch checkpoint or weight file{_reason(path, err)}") from None


def _reason(path: Path, err: Exception) -> str:
    """A short parenthesised cause worth showing (what the file is instead, torch's archive errors), or nothing."""
    if path.stat().st_size == 0:
        return " (the file is empty)"
    what = not_a_pickle(path)
    if what is not None:
        return f" ({what})"
    if not isinstance(err, RuntimeError) or not str(err).strip():
        return ""
    text = _ENFORCE.sub("", str(err).strip().splitlines()[0])
    return f" ({_short(text)})"


def _short(text: str, limit: int = 120) -> str:
    """``text`` on one line, cut at a word boundary with "..." when over ``limit`` characters (never mid-word)."""
    text = escape(" ".join(text.split()))
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " ..."


#: First bytes of what ``torch.save`` writes: a zip archive, or (legacy) a pickle from protocol 2 on.
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def not_a_pickle(path: Path) -> str | None:
    """What a file that cannot be a torch checkpoint is (JSON, text, other binary data), said in a few
    words; None when it starts as a zip archive or a pickle does. Files that are not pickles must not be
    reported as "refused for safety" (issue 16): nothing in them was refused, they are simply not weights."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if not head or head.startswith(_TORCH_MAGIC):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.lstrip()[:1] in ("{", "[") and path.stat().st_size <= MAX_JSON_BYTES:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            data = None
        if isinstance(data, dict) and ("model_type" in data or "architectures" in data):
            return "it is a JSON model config, not weights: pass the folder that holds it and the weight file"
        if data is not None:
            return "it is a JSON file, not weights"
    if text is not None and all(c.isprintable() or c.isspace() for c in text[:4096]):
        return "it is a text file, not weights"
    return (f"it is neither a zip archive nor a pickle, the two forms torch.save writes: it starts with bytes "
            f"{head[:4].hex(' ')}")


def _unpickling_error(path: Path, message: str) -> CheckpointError:
    found = _GLOBAL.search(message)
    if found:
        return CheckpointError(
            f"{path} was refused for safety: its pickle needs {found.group(1)}, which is outside the "
            f"weights-only allow-list (tensors, plain types, argparse.Namespace)"
        )
    what = not_a_pickle(path)
    if what is not None:
        return CheckpointError(f"{path} is not a PyTorch checkpoint or weight file ({what})")
    if "Weights only load failed" in message:
        opcode = _OPCODE.search(message)
        what = f"pickle opcode {opcode.group(1)}" if opcode else "pickle features"
        return CheckpointError(
            f"{path} was refused for safety: it uses {what} outside what weights-only loading accepts"
        )
    first_line = _short(message.strip().splitlines()[0]) if message.strip() else "unreadable pickle"
    return CheckpointError(f"{path} is not a PyTorch checkpoint or weight file ({first_line})")

__all__ = ["HF_WEIGHT_FILES", "RUN_CHECKPOINT", "SAFE_GLOBALS", "Source", "TORCH_SUFFIXES", "is_temporary",
    "check_safetensors_header", "check_zip_integrity", "locate", "not_a_pickle", "read_json", "read_weights",
    "safe_torch_load"]
