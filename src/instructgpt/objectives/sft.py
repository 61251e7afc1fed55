"""SFT loss reductions: per-example losses and the step-level weights of each reduction.

The multi-task loss of one optimizer step is L = Σ_e w_e · S_e, where S_e is the summed
token NLL of example e and the weights w_e come from the counts of the *whole step*, so any
split of the step into micro-batches (or processes) gives the same gradient:

    token_mean     w_e = 1 / Σ_e' T_e'                       every loss token counts the same
    example_mean   w_e = 1 / (E · T_e)                       every example counts the same
    task_balanced  w_e = 1 / (N · M_task(e) · T̄)            L = (1/N) Σ_i (1/M_i) Σ_j L_ij

with T_e the loss tokens of example e, E examples, N tasks present, M_i examples of task i.
L_ij = S_ij / T̄ is the NLL of example j's answer, -log p(answer | prompt), in units of T̄,
the step's mean answer length (a constant, so L reads like a per-token loss). Every task
weighs the same whatever its example count; within a task every answer token weighs the
same, so a task whose answers are long (spelling a word) is not learnt at a fraction of the
rate of a one-word label, which dividing each example by its own length would do.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable

import torch
import torch.nn.functional as F

from instructgpt.utils import IGNORE_INDEX


class Reduction(str, Enum):
    task_balanced = "task_balanced"
    token_mean = "token_mean"
    example_mean = "example_mean"


def loss_positions(labels: torch.Tensor, example_index: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which positions predict a loss-carrying token, that token, and the example owning it.

    labels, example_index: (B, T). Position t predicts labels[t+1], which belongs to
    example_index[t+1]. Returns (keep (B, T-1) bool, targets (K,), owners (K,)).
    """
    keep = labels[:, 1:] != IGNORE_INDEX
    return keep, labels[:, 1:][keep], example_index[:, 1:][keep]


def example_losses_at(logits: torch.Tensor, targets: torch.Tensor, owners: torch.Tensor,
                      num_examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL and loss-token count of each example from the logits of the kept positions only.

    logits: (K, V) at the positions `loss_positions` keeps; targets, owners: (K,).
    Returns (sums (num_examples,), tokens (num_examples,)).
    """
    nll = F.cross_entropy(logits.float(), targets, reduction="none")            # (K,)
    sums = torch.zeros(num_examples, dtype=nll.dtype, device=nll.device).index_add_(0, owners, nll)
    tokens = torch.zeros(num_examples, dtype=torch.long, device=nll.device).index_add_(
        0, owners, torch.ones_like(owners))
    return sums, tokens


def example_losses(logits: torch.Tensor, labels: torch.Tensor, example_index: torch.Tensor,
                   num_examples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL and loss-token count of each example.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss; example_index: (B, T)
    long, the example each position belongs to (several per row when packed; any value where
    labels are ignored). Returns (sums (num_examples,), tokens (num_examples,)).
    """
    keep, targets, owners = loss_positions(labels, example_index)
    return example_losses_at(logits[:, :-1][keep], targets, owners, num_examples)


def token_mean_weights(task_ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """task_ids, tokens: (E,) over the whole step -> (E,) weights."""
    return torch.ones(tokens.shape, device=tokens.device) / tokens.sum().clamp(min=1)


def example_mean_weights(task_ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    has_loss = tokens > 0
    return has_loss / (has_loss.sum().clamp(min=1) * tokens.clamp(min=1))


def task_balanced_weights(task_ids: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    has_loss = tokens > 0
    tasks, inverse = torch.unique(task_ids[has_loss], return_inverse=True)
    per_task = torch.bincount(inverse, minlength=len(tasks))                    # M_i, (N,)
    weights = torch.zeros(tokens.shape, device=tokens.device)
    mean_tokens = tokens[has_loss].float().mean()                                # T̄
    weights[has_loss] = 1.0 / (len(tasks) * per_task[inverse] * mean_tokens)
    return weights


STEP_WEIGHTS: dict[Reduction, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    Reduction.token_mean: token_mean_weights,
    Reduction.example_mean: example_mean_weights,
    Reduction.task_balanced: task_balanced_weights,
}


def weighted_loss(sums: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_e w_e · S_e for the examples of one micro-batch (weights from the whole step)."""
    return (weights.to(sums.dtype) * sums).sum()
