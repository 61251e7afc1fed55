"""Device choice and mixed-precision autocast."""
from __future__ import annotations

import contextlib

import torch

from instructgpt.config.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """auto = CUDA when present, else CPU; under torchrun `cuda` means this process's GPU (LOCAL_RANK)."""
    from instructgpt.utils import dist
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.active() and torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank())
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available (use device=cpu)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or GPU (weights stay fp32); a no-op for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
