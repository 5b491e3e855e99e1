"""Devices: naming one (`resolve_device`) and asking what it does fast (`bf16_is_fast`).

Every entry point that takes a `device` (`pfn.load`, `pfn.train`, the tabular estimators) reads
it through `resolve_device`, so a bad or unavailable device fails the same clear way everywhere.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

# CPU flags of bf16 arithmetic in hardware: x86 AVX512-BF16 and AMX-BF16 (`flags` in /proc/cpuinfo),
# Arm's BF16 extension (`Features`). Without one, bf16 autocast emulates bf16 and a training step ran
# 8-20x slower than fp32 (an AVX2-only AMD EPYC).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def resolve_device(name: str | torch.device) -> torch.device:
    """`"auto"` is the GPU where there is one, else the CPU; any other name as torch reads it.

    Returns:
        The `torch.device`.

    Raises:
        TypeError: if `name` is neither a `str` nor a `torch.device`.
        ValueError: naming `name`, if it is not a torch device or not available here (e.g.
            "cuda" on a CPU-only build).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shown = repr(str(name) if isinstance(name, torch.device) else name)
    if not isinstance(name, (str, torch.device)):
        raise TypeError(f"device={shown} must be a device name (str) or a torch.device; use 'auto', 'cpu' or 'cuda'")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={shown} is not a torch device ({err}); use 'auto', 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={shown} but torch sees no CUDA GPU here (torch {torch.__version__}, "
                         "torch.cuda.is_available() is False); use 'cpu' or 'auto'")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"device={shown} is not available here ({err}); use 'cpu' or 'auto'") from None
    return device


def cpu_flags() -> set[str]:
    """The instruction-set flags of this machine's CPU (the `flags` / `Features` lines of /proc/cpuinfo);
    empty where there is no /proc/cpuinfo (macOS, Windows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    return set()


def bf16_is_fast(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 autocast can pay on `device`: a GPU that supports bf16, or a CPU with bf16
    instructions (`BF16_CPU_FLAGS`). Other device types are not checked (True).

    Returns:
        The answer and its reason, one sentence naming what was found.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return True, f"the GPU ({name}) supports bf16"
        return False, f"the GPU ({name}) does not support bf16"
    if device.type != "cpu":
        return True, f"bf16 support is not checked on device type {device.type!r}"
    found = sorted(cpu_flags() & set(BF16_CPU_FLAGS))
    capability = torch.backends.cpu.get_cpu_capability()
    if found:
        return True, f"the CPU has bf16 instructions ({', '.join(found)}; torch reports {capability})"
    return False, (f"the CPU has no bf16 instructions (torch reports {capability}; none of {', '.join(BF16_CPU_FLAGS)} "
                   "in /proc/cpuinfo), where bf16 autocast trained 8-20x slower than fp32")
