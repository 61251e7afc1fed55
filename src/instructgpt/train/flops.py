"""Throughput accounting: the machine's measured peak matmul rate and model FLOPs utilisation."""
from __future__ import annotations

import functools
import platform
import time

import torch


@functools.lru_cache(maxsize=None)
def measure_peak_flops(device: str = "cpu", dtype: str = "float32", max_size: int | None = None,
                       slow_s: float = 0.25) -> float:
    """Best FLOP/s of square matmuls in `dtype` on `device`, growing the size up to `max_size`
    (default 2048 on CPU, 8192 on a GPU, which needs large products to reach its peak) while one
    product takes under `slow_s` seconds (bounded time even where a dtype is slow)."""
    max_size = max_size or (8192 if device == "cuda" else 2048)
    dt = getattr(torch, dtype)
    best = 0.0
    size = 256
    while size <= max_size:
        a = torch.randn(size, size, device=device).to(dt)
        b = torch.randn(size, size, device=device).to(dt)
        elapsed = _time_matmul(a, b, device)
        if elapsed < slow_s:  # cheap enough to take the best of three
            elapsed = min(elapsed, _time_matmul(a, b, device), _time_matmul(a, b, device))
        best = max(best, 2 * size**3 / elapsed)
        if elapsed > slow_s:
            break
        size *= 2
    return best


def _time_matmul(a: torch.Tensor, b: torch.Tensor, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    torch.matmul(a, b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def training_flops_per_token(non_embedding_params: int) -> float:
    """6N: forward 2N + backward 4N multiply-adds per token (Kaplan et al. 2020)."""
    return 6.0 * non_embedding_params


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
    return flops_per_token * tokens_per_s / peak_flops


def resolve_precision(device: torch.device, precision: str) -> str:
    """`auto` -> "bf16" (autocast) where this device multiplies bf16 matrices clearly faster than
    fp32 (a GPU with bf16, a CPU with AVX-512 BF16 or AMX), else "fp32": on a CPU without bf16
    units, bf16 matmuls run far slower than fp32 (measured 1.4 against 139 GFLOP/s on an AVX2 EPYC).
    An x86 CPU is judged by its features (torch's cpuinfo), the same in every process; others by timing a product,
    which a busy machine can tip (measured on an AVX-512 BF16 EPYC under load: 1.51-2.0x)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    has_bf16 = _cpu_has_bf16_units()
    if has_bf16 is not None:
        return "bf16" if has_bf16 else "fp32"
    return "bf16" if _bf16_speedup(device.type) > 1.5 else "fp32"


def _cpu_has_bf16_units() -> bool | None:
    """Whether this x86 CPU has bf16 matrix instructions (AVX-512 BF16 or AMX), as torch's cpuinfo
    reads them; None on other architectures, whose features torch does not report this way."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@functools.lru_cache(maxsize=None)
def _bf16_speedup(device: str) -> float:
    """fp32 time / bf16 time of a 256x256 matmul, best of five each (about 0.1 s where bf16 is slow)."""
    a = torch.randn(256, 256, device=device)
    b = torch.randn(256, 256, device=device)
    times = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        torch.matmul(x, y)  # warm-up
        times[dtype] = min(_time_matmul(x, y, device) for _ in range(5))
    return times[torch.float32] / times[torch.bfloat16]
