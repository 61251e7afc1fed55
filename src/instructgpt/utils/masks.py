"""Attention masks for several sequences packed into one row."""
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
