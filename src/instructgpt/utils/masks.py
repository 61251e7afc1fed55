"""Several sequences in one row: which row each goes to, and the attention mask that keeps them apart."""
from __future__ import annotations

import torch


def block_causal_mask(segment: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) segment ids -> (B, 1, T, T) additive mask: 0 where query may see key, else -inf-ish.

    Padding (segment -1) forms its own block, so no row of the mask is empty (no NaN).
    """
    T = segment.size(1)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=segment.device))
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal                # (B, T, T)
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def first_fit_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Sequence numbers per row: first-fit by decreasing length into rows of `width` tokens."""
    rows: list[list[int]] = []
    free: list[int] = []
    for k in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        row = next((r for r, room in enumerate(free) if room >= lengths[k]), None)
        if row is None:
            rows.append([])
            free.append(width)
            row = len(rows) - 1
        rows[row].append(k)
        free[row] -= lengths[k]
    return rows
