"""Losses on numbers worked out by hand."""
import math

import torch

from instructgpt.objectives import IGNORE_INDEX, causal_lm_loss, masked_lm_loss


def test_causal_lm_loss_by_hand():
    # vocab 2; logits at t=0 favour token 1 by log(3): p(1) = 3/4
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[0, 1, 0]])
    loss, n = causal_lm_loss(logits, labels)
    # predictions: t0 -> label 1 (p=3/4), t1 -> label 0 (p=1/2); t2 predicts nothing
    assert n == 2
    assert torch.isclose(loss, torch.tensor(-math.log(0.75) - math.log(0.5)))
    loss, n = causal_lm_loss(logits, torch.tensor([[0, IGNORE_INDEX, 0]]))
    assert n == 1 and torch.isclose(loss, torch.tensor(math.log(2.0)))


def test_masked_lm_loss_counts_only_masked_positions():
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0]]])
    loss, n = masked_lm_loss(logits, torch.tensor([[1, IGNORE_INDEX]]))
    assert n == 1 and torch.isclose(loss, torch.tensor(-math.log(0.75)))
