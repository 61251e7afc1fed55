"""`classify`: labels and their probabilities for texts, from a task-heads folder or a causal LM.

    heads folder (heads.json)   the task's head over the rendered prompt; softmax over its labels
    causal LM folder            every label scored as log P(label <|im_end|> | ChatML prompt),
                                summed over its tokens; softmax over the labels

With a task, the prompt is the task's first instruction rendered with the text (tasks.json), as
the model saw its tasks in training; a causal LM also takes `labels=` alone, the text as the prompt.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from instructgpt.config.errors import UserError
from instructgpt.models.build import pad_id
from instructgpt.models.heads import encode_texts, load_classifier, load_tasks_json, pad_batch
from instructgpt.tokenizer.chat import SPECIAL_TOKENS, encode_chat
from instructgpt.utils.device import resolve_device
from instructgpt.utils.prompt import render_instruction


class Classifier:
    """`.classify(texts, task, labels)` -> `[{"label", "probs": {label: p}, "logprobs": {...}}, ...]`;
    made by the engine (`instructgpt.load(path).classify`)."""

    def __init__(self, path: Path, tasks: dict[str, dict[str, Any]]):
        self.path, self.tasks = path, tasks

    def prompts(self, texts: Sequence[str], task: str | None) -> list[str]:
        """Each text inside the task's first instruction (as is without a task, or when it has none)."""
        instructions = (self.task(task).get("instructions") or []) if task is not None else []
        return [render_instruction(instructions[0], t) if instructions else t for t in texts]

    def task(self, task: str) -> dict[str, Any]:
        if task not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none: the folder has no tasks.json"
            raise UserError(f"{self.path}: unknown task '{task}' (known: {known})")
        return self.tasks[task]

    def labels(self, task: str | None, override: Sequence[str] | None) -> list[str]:
        if task is None and override is None:
            raise UserError("classify needs labels=[...] or task=NAME (a task of the folder's tasks.json)")
        labels = list(override) if override is not None else list(self.task(task).get("labels") or [])
        if not labels:
            raise UserError(f"{self.path}: task '{task}' has no labels (tasks.json); pass labels=[...]")
        if len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
            raise UserError(f"labels must be distinct non-empty strings (got {labels})")
        return labels

    def classify(self, texts: Sequence[str], task: str | None, labels: Sequence[str] | None = None,
                 batch_size: int = 32) -> list[dict[str, Any]]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        names = self.labels(task, labels)
        scores = self.label_scores(self.prompts(texts, task), task, names, batch_size)  # (N, L)
        return [{"label": names[int(row.argmax())],
                 "probs": {n: float(p) for n, p in zip(names, row.softmax(-1))},
                 "logprobs": {n: float(x) for n, x in zip(names, row)}} for row in scores]

    def label_scores(self, prompts: list[str], task: str | None, labels: list[str], batch_size: int) -> torch.Tensor:
        """(N, L) log-likelihood of each label for each prompt; softmax gives the probabilities."""
        raise NotImplementedError


class HeadsClassifier(Classifier):
    """The task's linear head; `labels=` may pick a subset of its labels (probabilities renormalised)."""

    def __init__(self, path: Path, device: str = "auto"):
        super().__init__(path, load_tasks_json(path))
        self.device = resolve_device(device)
        self.model, self.tokenizer = load_classifier(path)
        self.model.to(self.device)

    @torch.no_grad()
    def label_scores(self, prompts: list[str], task: str | None, labels: list[str], batch_size: int) -> torch.Tensor:
        """(N, L) log-softmax of the task head over the chosen labels."""
        if task is None:
            raise UserError(f"{self.path}: a task-heads folder needs task= (one of: {', '.join(sorted(self.tasks))})")
        own = self.model.task_labels[task]
        missing = [label for label in labels if label not in own]
        if missing:
            raise UserError(f"{self.path}: task '{task}' has no head output for label(s) {', '.join(missing)} "
                            f"(its labels: {', '.join(own)})")
        columns = torch.tensor([own.index(label) for label in labels])
        ids = encode_texts(self.tokenizer, prompts, self.model.max_len)
        task_id = self.model.task_index(task)
        out = []
        for i in range(0, len(ids), batch_size):
            input_ids, mask = pad_batch(ids[i:i + batch_size], pad_id(self.tokenizer))
            task_ids = torch.full((input_ids.shape[0],), task_id, dtype=torch.long)
            logits = self.model(input_ids.to(self.device), mask.to(self.device), task_ids.to(self.device))
            out.append(logits[:, columns.to(self.device)].float().log_softmax(dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(labels))


class LMClassifier(Classifier):
    """Scores each label as a completion of the ChatML prompt under a loaded causal LM."""

    def __init__(self, path: Path, tasks: dict[str, dict[str, Any]], model, tokenizer):
        super().__init__(path, tasks)
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def label_scores(self, prompts: list[str], task: str | None, labels: list[str], batch_size: int) -> torch.Tensor:
        """(N, L) Σ log P(label tokens + <|im_end|> | prompt)."""
        tok = self.tokenizer
        im_end = tok.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"])
        answers = [tok.encode(label, add_special_tokens=False) + [im_end] for label in labels]
        pairs = []  # (prompt ids, answer ids) for every prompt x label, prompt-major
        for prompt in prompts:
            ids, _ = encode_chat(tok, [{"role": "user", "content": prompt}], add_generation_prompt=True)
            pairs += [(ids, answer) for answer in answers]
        scores = torch.cat([self.completion_logprobs(pairs[i:i + batch_size])
                            for i in range(0, len(pairs), batch_size)]) if pairs else torch.zeros(0)
        return scores.view(len(prompts), len(labels))

    def completion_logprobs(self, pairs: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        """(P,) Σ log P(answer | prompt) for each (prompt ids, answer ids) pair."""
        input_ids, mask = pad_batch([p + a for p, a in pairs], pad_id(self.tokenizer))
        answer_mask = torch.zeros_like(mask, dtype=torch.bool)                   # (P, T): True on answer tokens
        for i, (p, a) in enumerate(pairs):
            answer_mask[i, len(p):len(p) + len(a)] = True
        input_ids, mask, answer_mask = (x.to(self.device) for x in (input_ids, mask, answer_mask))
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float()   # (P, T, V)
        logprobs = logits[:, :-1].log_softmax(dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (P, T-1)
        return (logprobs * answer_mask[:, 1:]).sum(dim=1).cpu()
