"""Numeric precision of training and optimisation: which autocast dtype a device gets, and where
channels_last pays.

On CPUs with native bf16 matrix units (Intel AMX-BF16, AVX512-BF16; Arm's BF16 extension) oneDNN runs
bf16 convolutions several times faster than fp32: VGG-19's forward and backward at batch 4, 256²,
on 2 cores, take 1.60 s in fp32 and 0.30 s in bf16 autocast with channels_last. On CPUs without
them bf16 is emulated and slower than fp32, so 'auto' keeps fp32 there. On CUDA 'auto' is bf16 on
Ampere and newer, fp16 (with a gradient scaler) before.

What autocast leaves in fp32 here: Gram matrices and every loss reduction (losses.py upcasts), the
weights, their gradients and the optimizer state (autocast casts copies of the weights per op).
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import torch

from texture_nets.core.errors import TextureNetsError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 AMX / AVX-512 BF16; "bf16": Arm's FEAT_BF16


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions, from its capability flags, not its name:
    PyTorch's own probes where it has them, else the kernel's /proc/cpuinfo flags."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # a probe missing from this build says nothing either way
            pass
    return bool(_cpuinfo_flags() & set(_CPU_BF16_FLAGS))


def _cpuinfo_flags() -> set[str]:
    """The CPU feature flags Linux lists (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype `precision` means on `device`, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise TextureNetsError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8  # Ampere and newer
        if precision == "auto":
            return torch.bfloat16 if native_bf16 else torch.float16
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16":
        raise TextureNetsError("precision fp16 needs CUDA; on the CPU use bf16 (or auto)")
    if precision == "bf16" or cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for `dtype` on `device` (a no-op context for None)."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def channels_last_for(device: torch.device, dtype: torch.dtype | None, enabled: bool) -> tuple[bool, bool]:
    """(VGG, generator): whether each should run in channels_last. CUDA: both (tensor cores want
    NHWC). CPU under bf16: VGG only — oneDNN's bf16 kernels want NHWC, but the generator's narrow
    convolutions ran 13% slower in it (measured, benchmarks/README.md). fp32 on the CPU: neither."""
    if not enabled:
        return False, False
    if device.type == "cuda":
        return True, True
    return dtype is not None, False
