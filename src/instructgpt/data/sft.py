"""SFT records in every shape of DESIGN.md §4, read as chat messages and grouped into tasks."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from instructgpt.config.errors import UserError
from instructgpt.config.schema import RecordSource, SFTConfig
from instructgpt.data.records import iter_jsonl
from instructgpt.tasks.registry import SPLITS
from instructgpt.tokenizer.chat import ROLES
from instructgpt.utils.logging import info
from instructgpt.utils.prompt import render_instruction

TASKS_INDEX = "index.json"  # written by the tasks stage: task -> kind, cluster, metric, labels, held_out
SHAPES = '{"prompt","completion"}, {"instruction","input","output"} or {"messages":[{"role","content"}]}'


@dataclass(frozen=True)
class TaskData:
    """One task's examples by split. An example is `{"task", "messages", "references"}`: the last
    message is the assistant's answer; `references` are every acceptable answer (for metrics)."""

    name: str
    cluster: str
    kind: str
    metric: str
    labels: tuple[str, ...] | None
    held_out: bool
    splits: dict[str, list[dict[str, Any]]] = field(repr=False)
    instructions: tuple[str, ...] = ()


def to_messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    """A record of any SFT shape as a list of messages ending with the assistant's turn."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise UserError(f'{where}: field "messages" must be a non-empty list of {{"role","content"}}')
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise UserError(f'{where}: messages[{i}] needs "role" in {ROLES} and string "content" (got {m!r})')
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise UserError(f"{where}: chat record has no assistant turn; add one "
                            f'{{"role": "assistant", "content": ...}} to learn from')
        return [dict(role=m["role"], content=m["content"]) for m in messages[:last + 1]]
    if "instruction" in record or "output" in record:
        _strings(record, ("instruction", "output"), where)
        user = render_instruction(record["instruction"], str(record.get("input") or ""))
        return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]
    if "prompt" in record or "completion" in record:
        _strings(record, ("prompt", "completion"), where)
        return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]
    raise UserError(f"{where}: not an SFT record (found fields: {', '.join(record) or 'none'}); expected {SHAPES}")


def _strings(record: dict[str, Any], names: Iterable[str], where: str) -> None:
    for name in names:
        if not isinstance(record.get(name), str):
            state = "is missing" if name not in record else "must be a string"
            raise UserError(f'{where}: field "{name}" {state} (found: {", ".join(record) or "nothing"})')


def to_example(record: dict[str, Any], task: str, where: str, labels: tuple[str, ...] | None,
               system_prompt: str | None = None, strip_suffix: str | None = None) -> dict[str, Any]:
    messages = to_messages(record, where)
    answer = messages[-1]["content"]
    if strip_suffix and answer.endswith(strip_suffix):
        answer = messages[-1]["content"] = answer[:-len(strip_suffix)]
    if not answer.strip():
        raise UserError(f"{where}: the answer (completion / output / last assistant turn) is empty")
    if labels is not None and answer not in labels:
        raise UserError(f"{where}: label {answer!r} is not one of task '{task}' labels "
                        f"({', '.join(labels)}); fix the record or the task's 'labels'")
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    references = record.get("references") or [answer]
    return {"task": task, "messages": messages, "references": [str(r) for r in references]}


def load_task_data(cfg: SFTConfig) -> list[TaskData]:
    """Every task the config names (a run's tasks folder, tasks built in memory, record files)."""
    found: list[TaskData] = []
    if cfg.tasks_dir:
        found += _from_tasks_dir(Path(cfg.tasks_dir), cfg.system_prompt)
    if cfg.tasks is not None:
        found += _from_registry(cfg)
    for source in cfg.data:
        found += _from_records(source, cfg)
    if not found:
        raise UserError("SFTConfig: no tasks; set tasks_dir, tasks or data")
    names = [t.name for t in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"task(s) {', '.join(dupes)} come from two sources (keys tasks_dir / tasks / data)")
    unknown = set(cfg.held_out_clusters) - {t.cluster for t in found}
    if unknown:
        raise UserError(f"held_out_clusters: no task in cluster(s) {', '.join(sorted(unknown))} (clusters: "
                        f"{', '.join(sorted({t.cluster for t in found}))})")
    for t in found:
        if not t.held_out and not t.splits["train"]:
            raise UserError(f"task '{t.name}' has no training examples; give it some or hold its cluster out")
    return found


def _from_tasks_dir(folder: Path, system_prompt: str | None) -> list[TaskData]:
    if not (folder / TASKS_INDEX).is_file():
        raise UserError(f"{folder}: no {TASKS_INDEX}; key tasks_dir must be a folder written by `instructgpt run` "
                        f"or the tasks stage")
    out = []
    for name, meta in json.loads((folder / TASKS_INDEX).read_text()).items():
        labels = tuple(meta["labels"]) if meta.get("labels") else None
        splits = {}
        for split in SPLITS:
            path = folder / name / f"{split}.jsonl"
            if split == "rl" and not path.is_file():  # runs made before the rl split
                splits[split] = []
                continue
            splits[split] = [to_example(r, name, f"{path}:{n}", labels, system_prompt) for n, r in iter_jsonl(path)]
        out.append(TaskData(name, meta["cluster"], meta["kind"], meta["metric"], labels, meta["held_out"], splits,
                            tuple(meta.get("instructions", ()))))
    return out


def _from_registry(cfg: SFTConfig) -> list[TaskData]:
    from instructgpt.tasks.registry import load_tasks
    out = []
    for st in load_tasks(cfg.tasks):
        t = st.task
        splits = {split: [to_example(r, t.name, f"task {t.name} ({split} {i})", t.labels, cfg.system_prompt)
                          for i, r in enumerate(st.records(split, cfg.tasks.seed, cfg.tasks.demo_filler))] for split in SPLITS}
        out.append(TaskData(t.name, t.cluster, t.kind, t.metric, t.labels, st.held_out, splits, t.instructions))
    return out


def _from_records(source: RecordSource, cfg: SFTConfig) -> list[TaskData]:
    """Group a record file's lines by task, then split each task into test / val / train by seed."""
    path = Path(source.path)
    by_task: dict[str, list[dict[str, Any]]] = {}
    cluster_of = {task: cluster for cluster, members in source.clusters.items() for task in members}
    default = source.task or path.name.split(".")[0]
    skipped: list[str] = []
    for lineno, record in iter_jsonl(path):
        task = source.task or str(record.get(source.task_key) or default)
        if (source.include and task not in source.include) or task in source.exclude:
            continue
        try:
            example = to_example(record, task, f"{path}:{lineno}", None, cfg.system_prompt, source.strip_suffix)
            by_task.setdefault(task, []).append(example)
        except UserError as e:
            if not source.skip_invalid:
                raise UserError(f"{e} (or set skip_invalid: true for this data source)") from None
            skipped.append(str(e))
    if skipped:
        info(f"sft: skipped {len(skipped)} bad record(s) of {path} (skip_invalid), the first: {skipped[0]}")
    missing = [t for t in source.include if t not in by_task]
    if missing:
        raise UserError(f"{path}: no records of task(s) {', '.join(missing)} (key data.include)")
    if not by_task:
        raise UserError(f"{path}: no records" + (f" left after skipping {len(skipped)} bad one(s)" if skipped else ""))
    out = []
    for task, examples in by_task.items():
        random.Random(f"{cfg.train.seed}:{task}").shuffle(examples)
        examples = examples[:source.max_per_task] if source.max_per_task else examples
        n_test, n_val = min(cfg.n_test, len(examples) // 5), min(cfg.n_val, len(examples) // 10)
        splits = {"test": examples[:n_test], "val": examples[n_test:n_test + n_val],
                  "train": examples[n_test + n_val:], "rl": []}
        cluster = cluster_of.get(task, task)
        out.append(TaskData(task, cluster, "generation", source.metric, None,
                            cluster in cfg.held_out_clusters, splits))
    return out


def task_metadata(tasks: list[TaskData], labels: dict[str, tuple[str, ...]] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """`tasks.json` beside a trained model: what `inference.classify` needs to render prompts and
    name labels. `labels` overrides a task's own (task heads infer them for record-file tasks)."""
    labels = labels or {}
    return {t.name: {"kind": t.kind, "cluster": t.cluster, "metric": t.metric, "held_out": t.held_out,
                     "labels": list(labels.get(t.name) or t.labels or []) or None,
                     "instructions": list(t.instructions)} for t in tasks}


def first_examples(tasks: Sequence[TaskData], split: str, per_task: int | None = None
                   ) -> list[tuple[TaskData, dict[str, Any]]]:
    """(task, example) for the first `per_task` examples (None: all) of every task's `split`."""
    return [(t, ex) for t in tasks for ex in t.splits[split][:per_task]]


def answers_cut_off(tokenizer, examples: Iterable[tuple[TaskData, dict[str, Any]]], max_new_tokens: int,
                    ) -> dict[str, tuple[int, int, int]]:
    """`{task: (answers too long, answers, longest)}` for the tasks some of whose shortest reference
    needs more than `max_new_tokens` new tokens (its end-of-turn token included): a decoder stopped
    there cannot be right on them, and the task's score is capped at the fraction that fits."""
    seen: dict[str, list[int]] = {}
    for task, ex in examples:
        seen.setdefault(task.name, []).append(1 + min(len(tokenizer.encode(r, add_special_tokens=False))
                                                      for r in ex["references"]))
    return {name: (sum(n > max_new_tokens for n in lengths), len(lengths), max(lengths))
            for name, lengths in seen.items() if max(lengths) > max_new_tokens}


def warn_cut_off(tokenizer, examples: Iterable[tuple[TaskData, dict[str, Any]]], max_new_tokens: int,
                 setting: str) -> None:
    """One line per task whose answers `max_new_tokens` cuts off, naming the `setting` to raise."""
    for name, (cut, total, longest) in answers_cut_off(tokenizer, examples, max_new_tokens).items():
        info(f"warning: {cut} of {total} '{name}' answers need more than {setting}={max_new_tokens} tokens "
             f"(up to {longest}), so its score is at most {(total - cut) / total:.3f}: raise {setting} to {longest}")
