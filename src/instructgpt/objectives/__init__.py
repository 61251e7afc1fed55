"""Objectives: pure loss functions of tensors."""
from instructgpt.objectives.lm import IGNORE_INDEX, causal_lm_loss, masked_lm_loss

__all__ = ["IGNORE_INDEX", "causal_lm_loss", "masked_lm_loss"]
