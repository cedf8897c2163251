"""Which device a run or a stylization uses."""

from __future__ import annotations

from typing import Callable

import torch


def resolve_device(requested: str, log: Callable[[str], None] = print) -> torch.device:
    """'auto' → CUDA if available; 'cuda' without a GPU falls back to the CPU with a message."""
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        log("CUDA is not available on this machine (no GPU or a CPU-only PyTorch): running on the CPU")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)', for logs and the dashboard."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
