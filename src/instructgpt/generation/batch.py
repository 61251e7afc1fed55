"""Many prompts at once: length-sorted batches through the KV-cache decoder, results in prompt order."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from instructgpt.generation.decode import generate
from instructgpt.generation.llama import prepare


@dataclass(frozen=True)
class Sample:
    """One response: its text (stop token dropped), generated ids (stop token kept) and their
    summed log-probability under the model's unscaled distribution."""

    text: str
    tokens: tuple[int, ...]
    logprob: float


@torch.no_grad()
def sample_many(model, tokenizer, prompts: Sequence[Sequence[int]], *, pad_id: int, stop_ids: Sequence[int],
                max_new_tokens: int, batch_size: int, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                seed: int = 0, stop_strings: Sequence[str] = ()) -> list[list[Sample]]:
    """`n` responses to each prompt (temperature 0 = greedy), deterministic in `seed`.

    Prompts are decoded in batches of similar length, so rows pad little. `stop_strings` end
    every response (its text is cut before them; its tokens keep the one that completed it).
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    lean = prepare(model)  # the weights stay as they are for every batch
    jobs = sorted(((i, k) for i in range(len(prompts)) for k in range(n)), key=lambda j: len(prompts[j[0]]))
    out: list[list[Sample | None]] = [[None] * n for _ in prompts]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        gen = generate(model, [prompts[i] for i, _ in chunk], pad_id=pad_id, stop_ids=stop_ids,
                       max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, generator=generator,
                       stop_strings=[tuple(stop_strings)] * len(chunk) if stop_strings else None,
                       tokenizer=tokenizer, lean=lean)
        texts = gen.texts(tokenizer)
        sums = gen.logprobs.sum(1).tolist()
        for row, (i, k) in enumerate(chunk):
            tokens = tuple(gen.tokens[row][gen.mask[row]].tolist())
            out[i][k] = Sample(texts[row], tokens, sums[row])
    model.train(was_training)
    return out  # type: ignore[return-value]
