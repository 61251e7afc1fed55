"""Means with 95% bootstrap intervals (resampling prompts), and per-cluster summaries."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def bootstrap_interval(values: Sequence[float], resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the mean of `values` over `resamples` resamples with replacement."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def group_means(scores: dict[str, float], groups: dict[str, str]) -> dict[str, float]:
    """Mean score of each group (e.g. cluster) over the tasks in `scores`; each task counts once."""
    members: dict[str, list[float]] = {}
    for task, value in scores.items():
        members.setdefault(groups[task], []).append(value)
    return {group: mean(values) for group, values in sorted(members.items())}


def fmt(x: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number for a table or a log line; '–' where there is none (None or NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def win_text(result: dict) -> str:
    """'0.549 [0.518, 0.581]', or '–' where no prompts were judged (win_prompts_per_task: 0)."""
    if result.get("win_rate") is None:
        return "–"
    low, high = result["win_interval"]
    return f"{fmt(result['win_rate'])} [{fmt(low)}, {fmt(high)}]"
