"""Task-head losses: per-example cross-entropy, weighted by the step-level weights of objectives/sft.py.

With one loss term per example (T_e = 1), task_balanced weights w_e = 1 / (N · M_task(e)) give

    L = Σ_e w_e · CE_e = (1/N) Σ_i (1/M_i) Σ_j CE_ij

over the N tasks and M_i examples of task i in the whole optimizer step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits (E, L) (-inf past an example's own labels), labels (E,) long -> CE (E,) in nats."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def weighted_classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                                 weights: torch.Tensor) -> torch.Tensor:
    """Σ_e w_e · CE_e over one micro-batch; `weights` (E,) come from the whole step."""
    return (weights.to(torch.float32) * classification_losses(logits, labels)).sum()
