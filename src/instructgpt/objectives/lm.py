"""Language-model losses, returned as (sum, count) so a step can normalise over all its tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from instructgpt.utils import IGNORE_INDEX


def next_token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(labels[t+1] | x_≤t) at every position t < T-1, and which of them carry loss.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss.
    Returns (nll (B*(T-1),) with 0 where ignored, keep (B*(T-1),) bool).
    """
    targets, keep = next_token_targets(labels)                                  # (B*(T-1),)
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets,
                          ignore_index=IGNORE_INDEX, reduction="none")          # (B*(T-1),)
    return nll, keep


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, keep), both (B*(T-1),): what position t < T-1 predicts, labels[t+1], and whether it
    carries loss. labels: (B, T) with IGNORE_INDEX where no loss."""
    targets = labels[:, 1:].reshape(-1)
    return targets, targets != IGNORE_INDEX


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy: Σ_t -log p(x_{t+1} | x_≤t) over positions whose label is kept.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss. Position t predicts
    labels[t+1]. Returns (summed loss in nats, number of predicted tokens).
    """
    nll, keep = next_token_nll(logits, labels)
    return nll.sum(), int(keep.sum())


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """BERT loss: Σ -log p(x_t | corrupted x) over masked positions (labels != IGNORE_INDEX).

    logits: (B, T, V); labels: (B, T). Returns (summed loss in nats, number of masked tokens).
    """
    flat_labels = labels.reshape(-1)                                     # (B*T,)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), flat_labels,
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((flat_labels != IGNORE_INDEX).sum())
