"""Language-model losses, returned as (sum, count) so a step can normalise over all its tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from instructgpt.utils import IGNORE_INDEX



def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy: Σ_t -log p(x_{t+1} | x_≤t) over positions whose label is kept.

    logits: (B, T, V); labels: (B, T) with IGNORE_INDEX where no loss. Position t predicts
    labels[t+1]. Returns (summed loss in nats, number of predicted tokens).
    """
    shift_logits = logits[:, :-1].reshape(-1, logits.size(-1)).float()   # (B*(T-1), V)
    shift_labels = labels[:, 1:].reshape(-1)                             # (B*(T-1),)
    loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((shift_labels != IGNORE_INDEX).sum())


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """BERT loss: Σ -log p(x_t | corrupted x) over masked positions (labels != IGNORE_INDEX).

    logits: (B, T, V); labels: (B, T). Returns (summed loss in nats, number of masked tokens).
    """
    flat_labels = labels.reshape(-1)                                     # (B*T,)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), flat_labels,
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((flat_labels != IGNORE_INDEX).sum())
