"""Reward-model losses: InstructGPT's K-way ranking loss and the pairwise loss it generalises."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ranking_loss(rewards: torch.Tensor, group_ids: torch.Tensor, ranks: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """InstructGPT eq. 1: -1/C(K,2) Σ log σ(r_w - r_l) over all pairs of one prompt, averaged over prompts.

    rewards: (N,) one score per completion; group_ids: (N,) prompt index; ranks: (N,) 0 = best.
    Equal ranks are a tie and form no pair, so a group's divisor is its number of ordered pairs
    (C(K,2) without ties). Groups without any pair do not count. Returns (loss, metrics) with
    metrics detached: `accuracy` (r_w > r_l) over all pairs, `pairs`, `groups`.
    """
    same = group_ids[:, None] == group_ids[None, :]                       # (N, N)
    pairs = same & (ranks[:, None] < ranks[None, :])                      # (N, N) i better than j
    winner, loser = pairs.nonzero(as_tuple=True)                          # (P,), (P,)
    margin = rewards[winner] - rewards[loser]                             # (P,)
    _, group_of = torch.unique(group_ids, return_inverse=True)            # (N,) dense group index
    owner = group_of[winner]                                              # (P,)
    n_groups = int(group_of.max()) + 1 if group_of.numel() else 0
    sums = torch.zeros(n_groups, dtype=margin.dtype, device=margin.device).index_add(
        0, owner, -F.logsigmoid(margin))
    counts = torch.zeros(n_groups, dtype=margin.dtype, device=margin.device).index_add(
        0, owner, torch.ones_like(margin))
    has_pairs = counts > 0
    loss = (sums[has_pairs] / counts[has_pairs]).mean() if bool(has_pairs.any()) else rewards.sum() * 0
    metrics = {"accuracy": (margin > 0).float().mean().detach() if margin.numel() else torch.tensor(0.0),
               "pairs": torch.tensor(float(margin.numel())), "groups": torch.tensor(float(has_pairs.sum()))}
    return loss, metrics


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley-Terry loss of one pair per row: mean -log σ(r_chosen - r_rejected). chosen, rejected: (P,)."""
    margin = chosen - rejected                                            # (P,)
    return -F.logsigmoid(margin).mean(), {"accuracy": (margin > 0).float().mean().detach()}
