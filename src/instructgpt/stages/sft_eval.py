"""Scoring a causal LM on tasks: greedy answers to chat prompts, each scored by its task's metric."""
from __future__ import annotations

from typing import Sequence

import torch

from instructgpt.data.sft import TaskData
from instructgpt.generation import generate
from instructgpt.models.build import pad_id
from instructgpt.tasks.metrics import score
from instructgpt.tokenizer.chat import SPECIAL_TOKENS, encode_chat


def stop_ids(tokenizer) -> list[int]:
    """End of turn and end of text: a model trained here stops on the first."""
    ids = {tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"]), tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def prompt_ids(tokenizer, example: dict) -> list[int]:
    """The example's messages before its answer, ending with the assistant header."""
    return encode_chat(tokenizer, example["messages"][:-1], add_generation_prompt=True)[0]


@torch.no_grad()
def answer(model, tokenizer, examples: Sequence[dict], max_new_tokens: int, batch_size: int,
           max_prompt_len: int | None = None) -> list[str]:
    """Greedy answers, prompts sorted by length so batches pad little."""
    was_training = model.training
    model.eval()
    prompts = [prompt_ids(tokenizer, ex) for ex in examples]
    if max_prompt_len:
        prompts = [p[-max_prompt_len:] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    pad = pad_id(tokenizer)
    texts: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        gen = generate(model, [prompts[i] for i in chunk], pad_id=pad, stop_ids=stop_ids(tokenizer),
                       max_new_tokens=max_new_tokens)
        texts.update(zip(chunk, gen.texts(tokenizer)))
    model.train(was_training)
    return [texts[i] for i in range(len(prompts))]


def score_tasks(model, tokenizer, tasks: Sequence[TaskData], split: str, limit: int | None,
                max_new_tokens: int, batch_size: int, max_prompt_len: int | None = None,
                ) -> dict[str, float]:
    """`{task: mean score}` over the first `limit` examples of `split` of every task (all if None);
    all tasks decode together, so batches stay full."""
    chosen = [(t, ex) for t in tasks for ex in (t.splits[split][:limit] if limit else t.splits[split])]
    if not chosen:
        return {}
    predictions = answer(model, tokenizer, [ex for _, ex in chosen], max_new_tokens, batch_size, max_prompt_len)
    totals: dict[str, list[float]] = {}
    for (task, ex), pred in zip(chosen, predictions):
        totals.setdefault(task.name, []).append(score(task.metric, pred, ex["references"]))
    return {name: sum(v) / len(v) for name, v in totals.items()}


def summarize(scores: dict[str, float], tasks: Sequence[TaskData]) -> dict[str, float]:
    """Mean score of held-in and of held-out tasks (each task counts once)."""
    out = {}
    for label, held_out in (("held_in_mean", False), ("held_out_mean", True)):
        values = [scores[t.name] for t in tasks if t.held_out == held_out and t.name in scores]
        if values:
            out[label] = sum(values) / len(values)
    return out
