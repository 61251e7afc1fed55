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


def decoder_hidden(decoder: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   unpad: bool = True) -> torch.Tensor:
    """(B, T, H) the decoder's hidden states of a padded batch (2D mask, left or right padding, or gaps).

    With `unpad`, when packing saves at least 15% of the positions, the batch runs without its
    padding: each row's attended tokens, first-fit by decreasing length into rows as long as the
    longest, per-sequence positions and a block-diagonal causal mask (data.packing), and the hidden
    states are scattered back to the padded layout (zeros at padding). Same values, fewer positions:
    a rollout's left-padded prompts are a third padding on the task suite.
    """
    if unpad and attention_mask.dim() == 2:
        layout = _unpadded_layout(attention_mask)
        if layout is not None:
            ids, positions, mask, src, dst = (t.to(input_ids.device) for t in _pack(input_ids, attention_mask, *layout))
            hidden = decoder(input_ids=ids, attention_mask=mask.to(_float_dtype(decoder)),
                             position_ids=positions).last_hidden_state                     # (R, W, H)
            B, T = input_ids.shape
            flat = hidden.reshape(-1, hidden.size(-1)).index_select(0, dst)
            return flat.new_zeros(B * T, flat.size(-1)).index_copy(0, src, flat).view(B, T, -1)
    return decoder(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids(attention_mask)).last_hidden_state


def _float_dtype(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _unpadded_layout(attention_mask: torch.Tensor, min_saving: float = 0.15):
    """(placement {row of the batch: (packed row, start)}, packed rows, width), or None when packing
    would save less than `min_saving` of the positions."""
    from instructgpt.utils.masks import first_fit_rows
    lengths = attention_mask.sum(1).tolist()
    width = max(lengths)
    rows = first_fit_rows(lengths, width)
    if len(rows) * width > (1 - min_saving) * attention_mask.numel():
        return None
    place = {}
    for r, members in enumerate(rows):
        start = 0
        for b in members:
            place[b] = (r, start)
            start += lengths[b]
    return place, len(rows), width


def _pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, place: dict, rows: int, width: int):
    from instructgpt.utils.masks import block_causal_mask
    ids = torch.zeros(rows, width, dtype=torch.long)
    positions = torch.zeros(rows, width, dtype=torch.long)
    segment = torch.full((rows, width), -1, dtype=torch.long)
    src, dst = [], []
    T = input_ids.size(1)
    cpu_ids, cpu_mask = input_ids.cpu(), attention_mask.cpu()
    for b, (r, start) in place.items():
        idx = cpu_mask[b].nonzero().squeeze(1)
        n = idx.numel()
        ids[r, start:start + n] = cpu_ids[b, idx]
        positions[r, start:start + n] = torch.arange(n)
        segment[r, start:start + n] = b
        src.append(b * T + idx)
        dst.append(r * width + start + torch.arange(n))
    return ids, positions, block_causal_mask(segment), torch.cat(src), torch.cat(dst)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) positions counting only attended tokens, so left-padded rows start at 0."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def action_logprobs(model, sequences: torch.Tensor, attention_mask: torch.Tensor, num_actions: int,
                    with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, A) log π(a_t | s_t) of the last `num_actions` tokens; the head runs on those positions only.
    With `with_entropy`, also the (B, A) entropy of π(· | s_t)."""
    decoder, head = lm_parts(model)
    hidden = decoder_hidden(decoder, sequences, attention_mask)                          # (B, T, H)
    logits = head(hidden[:, -num_actions - 1:-1]).float()                              # (B, A, V)
    logp = logits.log_softmax(-1)
    chosen = logp.gather(-1, sequences[:, -num_actions:, None]).squeeze(-1)             # (B, A)
    entropy = -(logp.exp() * logp).sum(-1) if with_entropy else None
    return chosen, entropy
