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


def action_logprobs(model, sequences: torch.Tensor, attention_mask: torch.Tensor, num_actions: int,
                    with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, A) log π(a_t | s_t) of the last `num_actions` tokens; the head runs on those positions only.
    With `with_entropy`, also the (B, A) entropy of π(· | s_t)."""
    decoder, head = lm_parts(model)
    hidden = decoder(input_ids=sequences, attention_mask=attention_mask,
                     position_ids=position_ids(attention_mask)).last_hidden_state          # (B, T, H)
    logits = head(hidden[:, -num_actions - 1:-1]).float()                              # (B, A, V)
    logp = logits.log_softmax(-1)
    chosen = logp.gather(-1, sequences[:, -num_actions:, None]).squeeze(-1)             # (B, A)
    entropy = -(logp.exp() * logp).sum(-1) if with_entropy else None
    return chosen, entropy
