"""The parts of an HF causal LM that a loss needs: the decoder's hidden states and the output head."""
from __future__ import annotations

import torch


def lm_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(decoder returning `last_hidden_state`, output projection) of a causal LM, PEFT-wrapped or not.

    Projecting only the positions that carry loss skips most of the output head's work and
    memory: an SFT row holds a few answer tokens after a long prompt, and a real model's
    vocabulary (SmolLM2: 49,152) makes (B, T, V) logits the largest tensor of the step.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) positions counting only attended tokens, so left-padded rows start at 0."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)
