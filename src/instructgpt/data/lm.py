"""Language-model batches from token shards: causal LM windows and masked-LM corruption."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from instructgpt.utils import IGNORE_INDEX



@dataclass
class LMBatch:
    """B sequences of T tokens. For causal LM, labels are the inputs (the loss shifts them)."""

    input_ids: torch.Tensor   # (B, T) long
    labels: torch.Tensor      # (B, T) long, IGNORE_INDEX where no loss
    weights: None = None      # no step-level weights: fit divides the summed loss by the step's tokens

    def to(self, device: torch.device) -> "LMBatch":
        return LMBatch(self.input_ids.to(device), self.labels.to(device))

    @property
    def num_loss_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def step_rng(seed: int, step: int, micro: int) -> np.random.Generator:
    """The data of step `step` depends only on (seed, step): resume needs no data cursor."""
    return np.random.default_rng([seed, step, micro])


def mask_tokens(ids: torch.Tensor, rng: np.random.Generator, mask_id: int, vocab_size: int,
                special_ids: list[int], probability: float = 0.15) -> LMBatch:
    """BERT corruption: pick `probability` of non-special tokens; 80% -> mask, 10% random, 10% kept.

    Labels hold the original token at picked positions and IGNORE_INDEX elsewhere.
    """
    shape = tuple(ids.shape)
    picked = rng.random(shape) < probability
    picked &= ~np.isin(ids.numpy(), special_ids)
    action = rng.random(shape)
    random_tokens = torch.from_numpy(rng.integers(0, vocab_size, size=shape))
    inputs = ids.clone()
    labels = torch.full_like(ids, IGNORE_INDEX)
    picked_t = torch.from_numpy(picked)
    labels[picked_t] = ids[picked_t]
    to_mask = picked_t & torch.from_numpy(action < 0.8)
    to_random = picked_t & torch.from_numpy((action >= 0.8) & (action < 0.9))
    inputs[to_mask] = mask_id
    inputs[to_random] = random_tokens[to_random]
    return LMBatch(inputs, labels)
