"""The report's figures as PNG (matplotlib, no display): win rates like the paper's Figure 1, and
training curves read from a run's `metrics/*.jsonl`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"pretrained": "#9e9e9e", "pretrained-prompted": "#616161", "sft": "#1f77b4", "ppo": "#d62728",
          "ppo-ptx": "#ff7f0e", "dpo": "#2ca02c"}
# (file stem, metric key, label) per panel of the training curves
CURVES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("pretraining loss", [("pretrain", "train/loss", "train"), ("pretrain", "val/loss", "validation")]),
    ("SFT loss", [("sft", "train/loss", "train (task-balanced)")]),
    ("reward model accuracy", [("rm", "rm/train_accuracy", "train batches"),
                               ("rm", "rm/accuracy/comparisons-heldout", "held-out labeler"),
                               ("rm", "rm/accuracy/comparisons-oracle", "oracle")]),
    ("PPO reward (RM score)", [("ppo", "ppo/reward", "ppo"), ("ppo-ptx", "ppo/reward", "ppo-ptx")]),
    ("PPO KL to SFT (nats / response)", [("ppo", "ppo/kl", "ppo"), ("ppo-ptx", "ppo/kl", "ppo-ptx")]),
]


def win_rate_figure(results: Sequence[dict[str, Any]], baseline: str, path: Path) -> Path:
    """Win rate against the baseline per model, with 95% bootstrap intervals (Figure 1 in miniature)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    names = [r["name"] for r in results]
    rates = [r["win_rate"] for r in results]
    low = [r["win_rate"] - r["win_interval"][0] for r in results]
    high = [r["win_interval"][1] - r["win_rate"] for r in results]
    xs = range(len(names))
    ax.errorbar(xs, rates, yerr=[low, high], fmt="none", ecolor="#333333", capsize=4, lw=1)
    ax.scatter(xs, rates, s=60, zorder=3, c=[COLORS.get(n, "#8c564b") for n in names])
    ax.axhline(0.5, color="#bbbbbb", ls="--", lw=1)
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"win rate against {baseline}")
    ax.set_title("Preference of the held-out labeler (95% bootstrap intervals)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: the rest is still good
            continue
    return rows


def training_curves(metrics_dir: Path, path: Path) -> Path | None:
    """One panel per curve group; groups with no data are left out. None when nothing was logged."""
    panels = []
    for title, series in CURVES:
        lines = []
        for stem, key, label in series:
            points = [(r["step"], r[key]) for r in read_metrics(metrics_dir / f"{stem}.jsonl")
                      if key in r and isinstance(r[key], (int, float))]
            if points:
                lines.append((label, points))
        if lines:
            panels.append((title, lines))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, lines) in zip(axes.flat, panels):
        for label, points in lines:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(points) < 8 else None, ms=3, lw=1.2, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
