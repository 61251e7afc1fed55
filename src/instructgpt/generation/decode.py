"""Batched KV-cache decoding of causal LMs: greedy or sampled (temperature, top-k, top-p), stop ids."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from instructgpt.models.parts import position_ids


@dataclass
class Generation:
    """B prompts, A = generated length (the longest response in the batch)."""

    tokens: torch.Tensor    # (B, A) long, pad_id after each response's stop token
    logprobs: torch.Tensor  # (B, A) float, log p(token) under the model's unscaled distribution
    mask: torch.Tensor      # (B, A) bool, True on generated tokens up to and including the stop token
    stopped: torch.Tensor   # (B,) bool, False where max_new_tokens ran out before a stop token

    def texts(self, tokenizer) -> list[str]:
        """Each response without its stop token."""
        out = []
        for row, keep, done in zip(self.tokens, self.mask, self.stopped):
            ids = row[keep].tolist()
            out.append(tokenizer.decode(ids[:-1] if done else ids, skip_special_tokens=True))
        return out


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and attention mask, prompts aligned to the right so generation continues them all."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[row, width - len(p):] = 1
    return ids, mask


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(B, V) logits with everything outside the top-k / the top-p nucleus set to -inf."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(model, prompts: Sequence[Sequence[int]], *, pad_id: int, stop_ids: Sequence[int],
             max_new_tokens: int, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             generator: torch.Generator | None = None) -> Generation:
    """Continue every prompt until a stop id or `max_new_tokens`; temperature 0 = greedy."""
    device = next(model.parameters()).device
    ids, attention = (t.to(device) for t in left_pad(prompts, pad_id))
    positions = position_ids(attention)
    stop = torch.tensor(list(stop_ids), device=device)
    B = ids.size(0)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, logprobs, masks = [], [], []
    past = None
    step_ids, step_pos = ids, positions
    for _ in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=attention, position_ids=step_pos,
                    cache=past, use_cache=True)
        past = out.cache  # transformers >= 5.24 names the KV cache `cache`
        logits = out.logits[:, -1].float()                                  # (B, V)
        if temperature > 0:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        logprobs.append(logits.log_softmax(-1).gather(1, nxt[:, None]).squeeze(1))
        masks.append(~done)
        tokens.append(nxt)
        done = done | torch.isin(nxt, stop)
        if bool(done.all()):
            break
        step_ids = nxt[:, None]
        step_pos = step_pos[:, -1:] + 1
        attention = torch.cat([attention, torch.ones((B, 1), dtype=attention.dtype, device=device)], 1)
    mask = torch.stack(masks, 1)
    return Generation(torch.stack(tokens, 1), torch.stack(logprobs, 1).masked_fill(~mask, 0.0), mask, done)
