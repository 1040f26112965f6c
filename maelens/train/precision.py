"""Which arithmetic precision a training run uses, and why (issue 12).

``auto`` picks bfloat16 autocast only where the device computes it natively: CUDA devices that report
bf16 support, and CPUs with AVX512-BF16 or AMX (the instructions oneDNN's bf16 matmuls run on). Elsewhere
bf16 on CPU is emulated and slower than float32, so ``auto`` keeps float32. Under autocast only the
matmul-heavy operations run in bf16; the loss, the target normalisation and the optimizer state stay
float32 (the model's parameters are never cast).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..choices import PRECISIONS

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """The resolved choice: ``name`` is ``fp32`` or ``bf16``; ``requested`` what the user asked for;
    ``reason`` one sentence for logs and ``maelens train``'s output."""

    name: str
    requested: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    def autocast(self, device_type: str) -> AbstractContextManager:
        """The context the forward pass runs in: bf16 autocast, or nothing for float32."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.name, "requested": self.requested, "reason": self.reason}


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native-bf16 instruction flags this CPU reports (empty when none or unreadable).

    torch's own probes (``torch._C._cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) are
    asked first; the kernel's ``/proc/cpuinfo`` flags are the fallback on builds without them.
    """
    found: list[str] = []
    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    cpu = getattr(getattr(torch, "_C", None), "_cpu", None)
    for flag, probe in probes.items():
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                found.append(flag)
        except Exception:  # noqa: BLE001 - a private probe that misbehaves only means "ask /proc"
            pass
    if found:
        return found
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return [f for f in _CPU_BF16_FLAGS if f in flags]
    return []


def resolve_precision(requested: str, device: torch.device | str) -> Precision:
    """Resolve ``auto`` / ``fp32`` / ``bf16`` for ``device``; an explicit choice is always honoured."""
    device = torch.device(device)
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "fp32":
        return Precision("fp32", requested, "float32 requested")
    if requested == "bf16":
        return Precision("bf16", requested, f"bfloat16 autocast requested on {device.type}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", requested, f"auto: {torch.cuda.get_device_name(device)} supports bfloat16")
        return Precision("fp32", requested, "auto: this CUDA device has no native bfloat16")
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        if flags:
            return Precision("bf16", requested, f"auto: the CPU computes bfloat16 natively ({', '.join(flags)})")
        return Precision("fp32", requested, "auto: the CPU has no AVX512-BF16 or AMX, bfloat16 would be emulated")
    return Precision("fp32", requested, f"auto: float32 on {device.type}")


def usable_cpu_threads() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count: on a machine
    shared through cgroups/taskset, more threads than allowed cores only contend."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)

__all__ = ["PRECISIONS", "Precision", "cpu_bf16_flags", "resolve_precision", "usable_cpu_threads"]
