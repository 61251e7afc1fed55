"""Throughput accounting: the machine's measured peak matmul rate and model FLOPs utilisation."""
from __future__ import annotations

import functools
import time

import torch


@functools.lru_cache(maxsize=None)
def measure_peak_flops(device: str = "cpu", dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` square matmuls of `size` in `dtype` on `device`."""
    dt = getattr(torch, dtype)
    a = torch.randn(size, size, device=device).to(dt)
    b = torch.randn(size, size, device=device).to(dt)
    torch.matmul(a, b)  # warm up kernels
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.matmul(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops_per_token(non_embedding_params: int) -> float:
    """6N: forward 2N + backward 4N multiply-adds per token (Kaplan et al. 2020)."""
    return 6.0 * non_embedding_params


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    return flops_per_token * tokens_per_s / peak_flops
