"""Stage `sft` in task-head mode (MT-DNN): a shared encoder, one linear head per classification task,
trained with the task-balanced loss L = (1/N) Σ_i (1/M_i) Σ_j CE_ij over the tasks of each step."""
from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from instructgpt.checkpoint import mark_complete
from instructgpt.config import SFTConfig, UserError, dump_config, require
from instructgpt.data.mixing import epoch_sample
from instructgpt.data.sft import TaskData, task_metadata
from instructgpt.models.build import pad_id
from instructgpt.models.heads import (MultiTaskClassifier, build_classifier, encode_texts, pad_batch,
                                      save_classifier)
from instructgpt.objectives.heads import weighted_classification_loss
from instructgpt.objectives.sft import STEP_WEIGHTS, Reduction
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.utils import dist
from instructgpt.utils.io import atomic_write_json, require_writable
from instructgpt.utils.device import resolve_device
from instructgpt.utils.logging import MetricsLogger, info
from instructgpt.utils.seed import set_seed

MAX_INFERRED_LABELS = 50   # a record-file task with more distinct answers is generation, not classification
MIN_PER_LABEL = 10         # ... and so is one with fewer train examples than this per distinct answer
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class HeadTask:
    """A classification task as its head sees it: its labels (given, or the sorted train answers)."""

    data: TaskData
    labels: tuple[str, ...]


@dataclass
class Split:
    """One split's N examples, every task together."""

    ids: list[list[int]]           # token ids of each prompt, cut to heads.max_len
    task_ids: torch.Tensor         # (N,) long, index into the classifier's tasks
    labels: torch.Tensor           # (N,) long, index into the task's labels; -1 = an answer outside them
    features: torch.Tensor | None = None  # (N, H) pooled outputs of a frozen encoder, computed once


@dataclass
class HeadsBatch:
    """E examples of one micro-batch; T = the longest prompt among them."""

    input_ids: torch.Tensor | None       # (E, T) long, right padded; None when features are cached
    attention_mask: torch.Tensor | None  # (E, T) long, 1 on real tokens
    features: torch.Tensor | None        # (E, H) cached frozen-encoder outputs, else None
    task_ids: torch.Tensor               # (E,) long
    labels: torch.Tensor                 # (E,) long
    weights: torch.Tensor                # (E,) step-level loss weights (objectives/sft.py, T_e = 1)
    num_loss_tokens: int                 # E: one loss term per example

    def to(self, device: torch.device) -> "HeadsBatch":
        def move(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device)
        return HeadsBatch(move(self.input_ids), move(self.attention_mask), move(self.features),
                          self.task_ids.to(device), self.labels.to(device), self.weights.to(device),
                          self.num_loss_tokens)


def run(cfg: SFTConfig, tasks: list[TaskData], resume: bool = False) -> Path:
    """Train task heads on every classification task among `tasks`, held-out clusters included
    (a head needs training data of its own task, so nothing is zero-shot here); write the
    classifier folder to `cfg.out`, test accuracy per task to `<out>/scores.json`."""
    require(cfg, "out")
    dist.setup(cfg.train.distributed)
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    head_tasks = classification_tasks(tasks)
    tokenizer_path = cfg.tokenizer or cfg.heads.path
    if not tokenizer_path:
        raise UserError("SFTConfig: mode heads needs key 'tokenizer' (a tokenizer folder) or 'heads.path'")
    tokenizer = load_tokenizer(tokenizer_path)
    pad = pad_id(tokenizer)
    set_seed(cfg.train.seed)  # the initial heads (and GRU) depend on the seed only
    model = build_classifier(cfg.heads, tokenizer, {t.data.name: list(t.labels) for t in head_tasks})
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info(f"sft (heads): {len(head_tasks)} task(s) on a {cfg.heads.encoder} encoder"
         f"{' (frozen)' if cfg.heads.freeze else ''}, {trainable / 1e6:.2f}M trainable parameters")
    splits = {s: encode_split(head_tasks, s, tokenizer, cfg.heads.max_len) for s in SPLITS}
    device = resolve_device(cfg.train.device)
    if cfg.heads.freeze:  # a feature extractor: run the encoder once per example, train the heads only
        for split in splits.values():
            split.features = encode_features(model, split, pad, cfg.eval.batch_size, device)
    if not resume and dist.is_main():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    # a step trains only the heads of the tasks it holds: DDP must allow the others' idle parameters
    train = cfg.train.model_copy(update={"distributed": cfg.train.distributed.model_copy(
        update={"find_unused_parameters": True})})

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        result = fit(model, heads_step, step_batches(cfg, head_tasks, splits["train"], pad), train, cfg.optim,
                     out, logger, resume=resume, desc=f"sft (heads, {cfg.heads.encoder})",
                     evaluate=lambda m: accuracy_metrics(m, head_tasks, splits["val"], pad, cfg.eval.batch_size,
                                                         "eval"))
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 scores and saves
        return out
    model = result.model.eval()
    with torch.no_grad():
        test = accuracy_metrics(model, head_tasks, splits["test"], pad, cfg.eval.batch_size, "test")
    scores = score_table(head_tasks, splits["test"], test, cfg)
    print(format_scores(scores), flush=True)
    metadata = task_metadata([t.data for t in head_tasks], {t.data.name: t.labels for t in head_tasks})
    save_classifier(out, model.cpu(), tokenizer, metadata, dump_config(cfg), keep=("checkpoints",))
    atomic_write_json(out / "scores.json", scores)
    mark_complete(out, step=result.step, val_mean_accuracy=result.last_eval.get("eval/mean_accuracy"),
                  test_mean_accuracy=scores["mean_accuracy"])
    return out


def classification_tasks(tasks: list[TaskData]) -> list[HeadTask]:
    """Tasks that list their labels, plus record-file tasks (kind generation, no labels) whose
    train answers form a small label set; the rest are left out, with a note."""
    chosen, skipped = [], []
    for t in tasks:
        labels = t.labels if t.labels is not None else inferred_labels(t)
        if labels is None or not t.splits["train"]:
            skipped.append(t.name)
        else:
            chosen.append(HeadTask(t, tuple(labels)))
    if skipped:
        info(f"sft (heads): not classification (no label set) or no train examples, left out: {', '.join(skipped)}")
    if not chosen:
        raise UserError("sft mode heads: no classification task among the tasks (none lists 'labels' and no "
                        "record-file task has a small set of answers); keys tasks / tasks_dir / data")
    return chosen


def inferred_labels(task: TaskData) -> tuple[str, ...] | None:
    """The sorted distinct train answers of a record-file task, when they look like labels."""
    if task.kind != "generation":
        return None
    answers = [answer_of(ex) for ex in task.splits["train"]]
    labels = sorted(set(answers))
    if 2 <= len(labels) <= MAX_INFERRED_LABELS and len(answers) >= MIN_PER_LABEL * len(labels):
        return tuple(labels)
    return None


def prompt_of(example: dict[str, Any]) -> str:
    """The text a head reads: the last user message (the rendered instruction and input)."""
    return next(m["content"] for m in reversed(example["messages"]) if m["role"] == "user")


def answer_of(example: dict[str, Any]) -> str:
    return example["messages"][-1]["content"]


def encode_split(head_tasks: list[HeadTask], split: str, tokenizer, max_len: int) -> Split:
    ids: list[list[int]] = []
    task_ids: list[int] = []
    labels: list[int] = []
    for index, t in enumerate(head_tasks):
        examples = t.data.splits[split]
        position = {label: i for i, label in enumerate(t.labels)}
        ids += encode_texts(tokenizer, [prompt_of(ex) for ex in examples], max_len) if examples else []
        task_ids += [index] * len(examples)
        labels += [position.get(answer_of(ex), -1) for ex in examples]
    return Split(ids, torch.tensor(task_ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long))


def make_batch(split: Split, rows: list[int], weights: torch.Tensor, pad: int) -> HeadsBatch:
    index = torch.tensor(rows, dtype=torch.long)
    if split.features is not None:
        input_ids = attention_mask = None
        features = split.features[index]
    else:
        (input_ids, attention_mask), features = pad_batch([split.ids[r] for r in rows], pad), None
    return HeadsBatch(input_ids, attention_mask, features, split.task_ids[index], split.labels[index], weights,
                      len(rows))


def step_batches(cfg: SFTConfig, head_tasks: list[HeadTask], train: Split, pad: int):
    """batches(step) -> the step's micro-batches: positions step·S .. step·S + S - 1 (S examples a
    step) of an endless stream of epochs, each a shuffled task mixture (key mix) drawn from
    (seed, epoch) alone; step weights (key reduction) from the whole step's tasks. Under torchrun
    S counts every rank's examples and each rank builds its own micro-batches."""
    sizes = {t.data.name: len(t.data.splits["train"]) for t in head_tasks}
    offsets, start = {}, 0
    for name, size in sizes.items():
        offsets[name], start = start, start + size
    per_step = cfg.train.batch_size * cfg.train.grad_accum * dist.world_size()
    weights_of = STEP_WEIGHTS[Reduction(cfg.reduction)]

    @functools.lru_cache(maxsize=4)
    def epoch(e: int) -> list[int]:
        return [offsets[task] + i for task, i in epoch_sample(sizes, cfg.mix, cfg.train.seed, e)]

    epoch_len = len(epoch(0))

    def batches(step: int) -> list[HeadsBatch]:
        rows = [epoch(p // epoch_len)[p % epoch_len] for p in range(step * per_step, (step + 1) * per_step)]
        task_ids = train.task_ids[torch.tensor(rows)]
        weights = weights_of(task_ids, torch.ones_like(task_ids))                 # (S,), T_e = 1
        b = cfg.train.batch_size
        return [make_batch(train, rows[s], weights[s], pad) for s in dist.local_slices(per_step, b)]
    return batches


def heads_step(model: MultiTaskClassifier, batch: HeadsBatch) -> tuple[torch.Tensor, int]:
    """Σ_e w_e · CE_e of one micro-batch, and the input tokens it processed."""
    if batch.features is not None:
        pooled, tokens = batch.features, batch.num_loss_tokens
    else:
        pooled, tokens = model.encode(batch.input_ids, batch.attention_mask), int(batch.attention_mask.sum())
    logits = model.classify(pooled, batch.task_ids)                               # (E, L)
    return weighted_classification_loss(logits, batch.labels, batch.weights), tokens


def _length_batches(split: Split, batch_size: int) -> list[list[int]]:
    """Row indices in batches of similar length (less padding), covering every row once."""
    order = sorted(range(len(split.ids)), key=lambda r: len(split.ids[r]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def encode_features(model: MultiTaskClassifier, split: Split, pad: int, batch_size: int,
                    device: torch.device) -> torch.Tensor:
    """(N, H) pooled encoder outputs in eval mode (no dropout), on the CPU."""
    model.to(device).eval()
    features = torch.zeros(len(split.ids), model.hidden_size)
    for rows in _length_batches(split, batch_size):
        input_ids, mask = pad_batch([split.ids[r] for r in rows], pad)
        features[torch.tensor(rows)] = model.encode(input_ids.to(device), mask.to(device)).float().cpu()
    return features


def predict(model: MultiTaskClassifier, split: Split, pad: int, batch_size: int) -> torch.Tensor:
    """(N,) the predicted label index of every example (call under no_grad, in eval mode)."""
    device = next(model.parameters()).device
    preds = torch.zeros(len(split.ids), dtype=torch.long)
    for rows in _length_batches(split, batch_size):
        weights = torch.zeros(len(rows))
        batch = make_batch(split, rows, weights, pad).to(device)
        pooled = batch.features if batch.features is not None else model.encode(batch.input_ids,
                                                                                  batch.attention_mask)
        preds[torch.tensor(rows)] = model.classify(pooled, batch.task_ids).argmax(dim=-1).cpu()
    return preds


def accuracy_metrics(model: MultiTaskClassifier, head_tasks: list[HeadTask], split: Split, pad: int,
                     batch_size: int, prefix: str) -> dict[str, float]:
    """`<prefix>/<task>/accuracy` for every task with examples, and their mean."""
    if not split.ids:
        return {}
    correct = predict(model, split, pad, batch_size) == split.labels
    metrics = {}
    for index, t in enumerate(head_tasks):
        mine = split.task_ids == index
        if mine.any():
            metrics[f"{prefix}/{t.data.name}/accuracy"] = correct[mine].float().mean().item()
    metrics[f"{prefix}/mean_accuracy"] = sum(metrics.values()) / max(len(metrics), 1)
    return metrics


def score_table(head_tasks: list[HeadTask], test: Split, metrics: dict[str, float], cfg: SFTConfig) -> dict:
    """What `scores.json` holds: test accuracy per task, per cluster (over its tasks' examples)
    and the mean over tasks."""
    rows: dict[str, dict[str, Any]] = {}
    clusters: dict[str, list[float]] = {}  # cluster -> [correct, examples]
    for index, t in enumerate(head_tasks):
        key = f"test/{t.data.name}/accuracy"
        if key in metrics:
            n = int((test.task_ids == index).sum())
            rows[t.data.name] = {"accuracy": metrics[key], "n": n, "labels": len(t.labels),
                                 "cluster": t.data.cluster, "held_out": t.data.held_out}
            tally = clusters.setdefault(t.data.cluster, [0.0, 0])
            tally[0], tally[1] = tally[0] + metrics[key] * n, tally[1] + n
    return {"encoder": cfg.heads.encoder, "encoder_path": cfg.heads.path, "freeze": cfg.heads.freeze,
            "steps": cfg.train.max_steps, "tasks": rows,
            "clusters": {c: {"accuracy": right / n, "n": n} for c, (right, n) in clusters.items()},
            "mean_accuracy": metrics.get("test/mean_accuracy")}


def format_scores(scores: dict) -> str:
    width = max([len(name) for name in scores["tasks"]] + [len("cluster " + c) for c in scores["clusters"]] + [12])
    lines = [f"{'task':<{width}}  {'cluster':<16} {'held out':<8} {'labels':>6} {'n':>5} {'accuracy':>8}"]
    for name, r in scores["tasks"].items():
        lines.append(f"{name:<{width}}  {r['cluster']:<16} {'yes' if r['held_out'] else 'no':<8} {r['labels']:>6} "
                     f"{r['n']:>5} {r['accuracy']:>8.3f}")
    if len(scores["clusters"]) < len(scores["tasks"]):
        for name, r in scores["clusters"].items():
            lines.append(f"{'cluster ' + name:<{width}}  {'':<16} {'':<8} {'':>6} {r['n']:>5} {r['accuracy']:>8.3f}")
    if scores["mean_accuracy"] is not None:
        lines.append(f"{'mean (tasks)':<{width}}  {'':<16} {'':<8} {'':>6} {'':>5} {scores['mean_accuracy']:>8.3f}")
    return "\n".join(lines)
