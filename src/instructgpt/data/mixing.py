"""Task mixing: how many examples of each task an epoch holds, resampled every epoch.

    balanced       n_i = max_i min(M_i, K)                 every task equally (small ones repeat)
    proportional   n_i = min(M_i, K)                       examples-proportional with a cap (FLAN)
    temperature    n_i ∝ min(M_i, K)^(1/T), Σ n_i = Σ min(M_i, K)   T = 1 proportional, T → ∞ balanced (T5)
"""
from __future__ import annotations

import random
from typing import Callable, Iterator

from instructgpt.config.schema import MixConfig


def balanced_counts(sizes: dict[str, int], cfg: MixConfig) -> dict[str, int]:
    n = max(min(m, cfg.cap) for m in sizes.values())
    return {task: n for task in sizes}


def proportional_counts(sizes: dict[str, int], cfg: MixConfig) -> dict[str, int]:
    return {task: min(m, cfg.cap) for task, m in sizes.items()}


def temperature_counts(sizes: dict[str, int], cfg: MixConfig) -> dict[str, int]:
    capped = proportional_counts(sizes, cfg)
    rates = {task: m ** (1 / cfg.temperature) for task, m in capped.items()}
    total, norm = sum(capped.values()), sum(rates.values())
    return {task: max(1, round(total * r / norm)) for task, r in rates.items()}


EPOCH_COUNTS: dict[str, Callable[[dict[str, int], MixConfig], dict[str, int]]] = {
    "balanced": balanced_counts, "proportional": proportional_counts, "temperature": temperature_counts,
}


def epoch_sample(sizes: dict[str, int], cfg: MixConfig, seed: int, epoch: int) -> list[tuple[str, int]]:
    """One epoch as shuffled (task, example index) pairs. A task drawing fewer than its M_i
    examples takes a fresh random subset each epoch; one drawing more repeats whole passes."""
    rng = random.Random(f"{seed}:mix:{epoch}")
    picks: list[tuple[str, int]] = []
    for task, n in EPOCH_COUNTS[cfg.strategy](sizes, cfg).items():
        m = sizes[task]
        order: list[int] = []
        while len(order) < n:
            order += rng.sample(range(m), m)
        picks += [(task, i) for i in order[:n]]
    rng.shuffle(picks)
    return picks


def iter_mixture(sizes: dict[str, int], cfg: MixConfig, seed: int) -> Iterator[tuple[str, int]]:
    """Epoch after epoch, forever; deterministic in `seed`."""
    epoch = 0
    while True:
        yield from epoch_sample(sizes, cfg, seed, epoch)
        epoch += 1
