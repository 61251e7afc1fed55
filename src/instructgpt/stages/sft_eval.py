"""Scoring a causal LM on tasks: greedy answers to chat prompts, each scored by its task's metric."""
from __future__ import annotations

from typing import Sequence

from instructgpt.data.preference import encode_prompt
from instructgpt.data.sft import TaskData
from instructgpt.generation import sample_many
from instructgpt.models.build import pad_id
from instructgpt.tasks.metrics import score
from instructgpt.tokenizer.chat import stop_ids


def answer(model, tokenizer, examples: Sequence[dict], max_new_tokens: int, batch_size: int,
           max_prompt_len: int | None = None) -> list[str]:
    """Greedy answers."""
    prompts = [encode_prompt(tokenizer, ex["messages"][:-1]) for ex in examples]
    if max_prompt_len:
        prompts = [p[-max_prompt_len:] for p in prompts]
    samples = sample_many(model, tokenizer, prompts, pad_id=pad_id(tokenizer), stop_ids=stop_ids(tokenizer),
                          max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [s[0].text for s in samples]


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
