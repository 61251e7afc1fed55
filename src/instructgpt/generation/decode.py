"""Batched KV-cache decoding of causal LMs: greedy or sampled (temperature, top-k, top-p per row),
stop ids and stop strings, per-token log-probs, seeded per batch or per row.

Llama-family models run through `LeanLlama` over a preallocated cache (`generation/llama.py`);
any other causal LM, or a PEFT-wrapped one, through its own HF forward and cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from instructgpt.generation.llama import LeanLlama, prepare
from instructgpt.models.parts import position_ids

MIN_TEMPERATURE = 1e-4  # below it a row decodes greedily

# Called after every step with the (B,) tokens just chosen and the (B,) rows that were still live;
# may return a (B,) bool of rows to stop now (a client that went away).
StepHook = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | None"]


@dataclass
class Generation:
    """B prompts, A = generated length (the longest response in the batch)."""

    tokens: torch.Tensor    # (B, A) long, pad_id after each response's stop token
    logprobs: torch.Tensor  # (B, A) float, log p(token) under the model's unscaled distribution
    mask: torch.Tensor      # (B, A) bool, True on generated tokens up to and including the stop token
    stop_id: torch.Tensor   # (B,) bool, True where the last generated token is a stop id
    stop_string: torch.Tensor  # (B,) bool, True where the text reached one of the row's stop strings
    stop_strings: list[tuple[str, ...]] = field(default_factory=list)  # per row; texts end before them

    @property
    def stopped(self) -> torch.Tensor:
        """(B,) bool: ended by a stop id or string; False where max_new_tokens ran out (or a hook stopped it)."""
        return self.stop_id | self.stop_string

    def texts(self, tokenizer) -> list[str]:
        """Each response without its stop token, cut before the first stop string."""
        out = []
        for row, (ids, keep) in enumerate(zip(self.tokens, self.mask)):
            ids = ids[keep].tolist()
            if bool(self.stop_id[row]) and ids:
                ids = ids[:-1]
            text = tokenizer.decode(ids, skip_special_tokens=True)
            cut = cut_at_stop(text, self.stop_strings[row] if self.stop_strings else ())
            out.append(text if cut is None else cut)
        return out


def cut_at_stop(text: str, stops: Sequence[str]) -> str | None:
    """`text` up to the earliest stop string, or None when it holds none."""
    found = [text.find(s) for s in stops if s and s in text]
    return text[:min(found)] if found else None


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and attention mask, prompts aligned to the right so generation continues them all."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[row, width - len(p):] = 1
    return ids, mask


def per_row(value, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """A scalar or one value per row as a (B,) tensor."""
    out = torch.as_tensor(value, dtype=dtype, device=device)
    return out.expand(batch) if out.dim() == 0 else out


def filter_logits(logits: torch.Tensor, top_k=0, top_p=1.0) -> torch.Tensor:
    """(B, V) logits with everything outside each row's top-k / top-p nucleus set to -inf.

    top_k, top_p: scalars or (B,) per row; top_k 0 and top_p 1 leave a row as it is.
    """
    B, V = logits.shape
    k = per_row(top_k, B, torch.long, logits.device).clamp(max=V)
    p = per_row(top_p, B, logits.dtype, logits.device)
    if bool((k > 0).any()):
        kth = logits.sort(-1, descending=True).values.gather(1, (k - 1).clamp(min=0)[:, None])  # (B, 1)
        logits = logits.masked_fill((logits < kth) & (k > 0)[:, None], float("-inf"))
    if bool((p < 1).any()):
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = (probs.cumsum(-1) - probs >= p[:, None]) & (p < 1)[:, None]  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


def choose(logits: torch.Tensor, temperature: torch.Tensor, top_k, top_p, uniform: torch.Tensor) -> torch.Tensor:
    """(B,) next tokens: argmax where temperature is 0 (or below 1e-4, where scaling would overflow),
    else an inverse-CDF draw with `uniform` (B,)."""
    greedy = logits.argmax(-1)
    hot = temperature >= MIN_TEMPERATURE
    if not bool(hot.any()):
        return greedy
    scaled = filter_logits(logits / torch.where(hot, temperature, 1.0)[:, None], top_k, top_p)
    cdf = scaled.softmax(-1).cumsum(-1)
    drawn = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).squeeze(1)
    return torch.where(hot, drawn.clamp(max=logits.size(-1) - 1), greedy)


class _HFStepper:
    """The model's own forward and cache: any causal LM, PEFT-wrapped or not."""

    def __init__(self, model, ids: torch.Tensor, attention: torch.Tensor):
        self.model, self.attention = model, attention
        self.positions = position_ids(attention)
        self.ids, self.past = ids, None

    def __call__(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, attention_mask=self.attention, position_ids=self.positions,
                         cache=self.past, use_cache=True)
        self.past = out.cache  # transformers >= 5.24 names the KV cache `cache`
        return out.logits[:, -1].float()

    def feed(self, nxt: torch.Tensor) -> None:
        B = nxt.size(0)
        self.ids, self.positions = nxt[:, None], self.positions[:, -1:] + 1
        self.attention = torch.cat([self.attention, self.attention.new_ones((B, 1))], 1)


class _LeanStepper:
    """`LeanLlama` over a cache preallocated for the prompt and every new token."""

    def __init__(self, lean: LeanLlama, ids: torch.Tensor, attention: torch.Tensor, max_new_tokens: int):
        self.lean = lean
        self.cache = self.lean.new_cache(ids.size(0), ids.size(1) + max_new_tokens)
        self.ids, self.positions, self.real = ids, position_ids(attention), attention.bool()

    def __call__(self) -> torch.Tensor:
        return self.lean.forward(self.ids, self.positions, self.real, self.cache).float()

    def feed(self, nxt: torch.Tensor) -> None:
        if self.ids.size(1) > 1:  # after the prompt: every new token is real, positions count on
            self.real, self.positions = self.real[:, -1:], self.positions[:, -1:]
        self.ids = nxt[:, None]
        self.positions = self.positions + 1


@torch.no_grad()
def generate(model, prompts: Sequence[Sequence[int]], *, pad_id: int, stop_ids: Sequence[int],
             max_new_tokens: int | Sequence[int], temperature=0.0, top_k=0, top_p=1.0,
             generator: torch.Generator | None = None, row_generators: Sequence[torch.Generator] | None = None,
             stop_strings: Sequence[Sequence[str]] | None = None, tokenizer=None,
             on_step: StepHook | None = None, fast: bool = True, lean: LeanLlama | None = None) -> Generation:
    """Continue every prompt until a stop id, a stop string or `max_new_tokens`.

    max_new_tokens / temperature / top_k / top_p: scalars or one per row; temperature 0 = greedy.
    Randomness: `row_generators` (one per row: a row's sample does not depend on its batch),
    else `generator` for the whole batch, else torch's global generator.
    stop_strings: per row; they need `tokenizer` to read the text as it grows.
    fast=False forces the HF forward (the reference the fast path is tested against).
    lean: `LeanLlama(model)` built earlier, for callers that decode many batches with weights that
    do not change in between (`prepare(model)`); None prepares one now.
    """
    device = next(model.parameters()).device
    ids, attention = (t.to(device) for t in left_pad(prompts, pad_id))
    B = ids.size(0)
    if stop_strings and any(stop_strings) and tokenizer is None:
        raise ValueError("stop strings need the tokenizer to read the generated text")
    if row_generators is not None and len(row_generators) != B:
        raise ValueError(f"{len(row_generators)} row generators for {B} prompts")
    limits = per_row(max_new_tokens, B, torch.long, device)
    longest = int(limits.max())
    ragged = bool((limits < longest).any())  # else every row's limit is the loop's end: no op a step for it
    if fast and lean is None:
        lean = prepare(model)
    step = _LeanStepper(lean, ids, attention, longest) if fast and lean is not None else _HFStepper(model, ids, attention)
    temperature = per_row(temperature, B, torch.float, device)
    top_k, top_p = per_row(top_k, B, torch.long, device), per_row(top_p, B, torch.float, device)
    sampling = bool((temperature >= MIN_TEMPERATURE).any())
    stop = torch.tensor(list(stop_ids), device=device, dtype=torch.long)
    strings = _StopStrings(stop_strings, tokenizer, B) if stop_strings and any(stop_strings) else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    hit_id, hit_string = torch.zeros_like(done), torch.zeros_like(done)
    tokens, logprobs, masks = [], [], []
    # inference mode: no version counters or view tracking, ~12% faster a step on the tiny model;
    # the outputs are made outside it (stack, clone), so callers may train on them
    with torch.inference_mode():
        for t in range(longest):
            logits = step()                                                                 # (B, V)
            if sampling:
                nxt = choose(logits, temperature, top_k, top_p, _uniform(B, generator, row_generators, device))
            else:
                nxt = logits.argmax(-1)
            # log p(token): log_softmax's fused kernel costs less than a logsumexp; rows already done are masked below
            logprobs.append(logits.log_softmax(-1).gather(1, nxt[:, None]))                 # (B, 1)
            nxt = nxt.masked_fill_(done, pad_id)
            live = ~done
            masks.append(live)
            tokens.append(nxt)
            if len(stop):
                hit_id = hit_id | (live & torch.isin(nxt, stop))
                done = done | hit_id
            if strings is not None:
                hit_string = hit_string | strings.hit(nxt, live & ~hit_id)
                done = done | hit_string
            if ragged:
                done = done | (limits <= t + 1)
            if on_step is not None:
                cancel = on_step(nxt, live)
                if cancel is not None:
                    done = done | cancel.to(device)
            if t + 1 == longest or bool(done.all()):
                break
            step.feed(nxt)
    mask = torch.stack(masks, 1)
    return Generation(torch.stack(tokens, 1), torch.cat(logprobs, 1).masked_fill(~mask, 0.0), mask,
                      hit_id.clone(), hit_string.clone(), [tuple(s) for s in stop_strings] if stop_strings else [])


def _uniform(B: int, generator, row_generators, device) -> torch.Tensor:
    if row_generators is not None:
        return torch.stack([torch.rand((), generator=g, device=g.device) for g in row_generators]).to(device)
    gen_device = generator.device if generator is not None else device
    return torch.rand(B, generator=generator, device=gen_device).to(device)


class _StopStrings:
    """Per-row stop strings, checked as each token arrives. Only the tail that can hold a newly
    completed stop string is decoded: the new token and one token per byte of the longest stop
    before it (a token holds at least one byte), so a step costs the same at any length."""

    def __init__(self, stop_strings: Sequence[Sequence[str]], tokenizer, batch: int):
        self.stops = [tuple(s for s in row if s) for row in stop_strings]
        self.window = [max((len(s.encode()) for s in row), default=0) + 1 for row in self.stops]
        self.ids: list[list[int]] = [[] for _ in range(batch)]
        self.tokenizer = tokenizer

    def hit(self, nxt: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        """(B,) rows in `live` whose text now holds one of their stop strings."""
        hit = torch.zeros_like(live)
        for row, (token, alive) in enumerate(zip(nxt.tolist(), live.tolist())):
            if alive and self.stops[row]:
                self.ids[row].append(token)
                tail = self.tokenizer.decode(self.ids[row][-self.window[row]:], skip_special_tokens=True)
                hit[row] = cut_at_stop(tail, self.stops[row]) is not None
        return hit
