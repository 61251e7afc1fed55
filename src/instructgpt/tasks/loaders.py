"""Task files: our JSON format (DESIGN.md §4) and Super-NaturalInstructions task JSON, read as is."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from instructgpt.config.errors import UserError
from instructgpt.tasks.task import Example, Task
from instructgpt.utils.io import atomic_write_text

MAX_CLASS_LABELS = 20  # a classification-category SNI task has at most this many distinct outputs
CLASS_WORDS = ("classification", "categorization", "sentiment analysis")


def load_task_file(path: str | Path) -> Task:
    """One task from `path`; errors name the file and the field (or line) at fault."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: task file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a task file holds one JSON object")
    if "Instances" in data and "Definition" in data:
        data = sni_to_task(data, path.stem)
    try:
        task = Task.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(task)"
        fix = "; see the task format in README.md" if err["type"] != "extra_forbidden" else \
            f" (valid fields: {', '.join(Task.model_fields)})"
        raise UserError(f"{path}: field '{key}': {err['msg']}{fix}") from None
    check_examples(task, path)
    return task


def check_examples(task: Task, path: Path) -> None:
    """A task needs examples, and a classification task's outputs must be among its labels."""
    if not task.examples:
        raise UserError(f"{path}: task '{task.name}' has no examples; add some under \"examples\"")
    if task.labels is None:
        return
    for i, ex in enumerate(task.examples):
        if ex.output not in task.labels:
            raise UserError(f"{path}:{_output_line(path, i)}: examples[{i}].output {ex.output!r} is not one of "
                            f"the labels ({', '.join(task.labels)}); fix the example or add the label")


def _output_line(path: Path, index: int) -> str:
    """The line of the `index`-th example's "output" key in our task format ('?' if not found)."""
    text = path.read_text(encoding="utf-8")
    start = text.find('"examples"')
    hits = [m.start() for m in re.finditer(r'"output"\s*:', text[start:])] if start >= 0 else []
    return str(text.count("\n", 0, start + hits[index]) + 1) if index < len(hits) else "?"


def load_task_paths(paths: list[str]) -> list[Task]:
    """Files as given; folders contribute every `*.json` inside (sorted)."""
    tasks = []
    for entry in paths:
        p = Path(entry)
        files = sorted(p.glob("*.json")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise UserError(f"{p}: folder holds no *.json task files")
        tasks.extend(load_task_file(f) for f in files)
    return tasks


def sni_to_task(data: dict[str, Any], name: str) -> dict[str, Any]:
    """Super-NaturalInstructions schema -> our task dict. Every listed output is a reference."""
    definition = data["Definition"]
    definition = " ".join(definition) if isinstance(definition, list) else str(definition)
    categories = data.get("Categories") or ["sni"]
    categories = [categories] if isinstance(categories, str) else [str(c) for c in categories]
    examples = []
    for i, inst in enumerate(data["Instances"]):
        outputs = inst.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(inst.get("input"), str) or not outputs:
            raise UserError(f"{name}: Instances[{i}] needs a string 'input' and a non-empty 'output' list")
        examples.append(Example(input=inst["input"], output=outputs[0], references=tuple(outputs)))
    labels = sorted({ex.output for ex in examples})
    # a category says so, or a few outputs repeat across many instances (multiple choice, yes/no)
    is_class = (any(w in c.lower() for c in categories for w in CLASS_WORDS) and len(labels) <= MAX_CLASS_LABELS) \
        or (len(labels) <= 5 and len(examples) >= 4 * len(labels))
    positives = data.get("Positive Examples") or []
    with_demo = definition
    if positives and isinstance(positives[0], dict) and "input" in positives[0]:
        demo = positives[0]
        with_demo = f"{definition}\n\nExample input: {demo['input']}\nExample output: {demo.get('output', '')}"
    return {
        "name": name, "kind": "classification" if is_class else "generation",
        "cluster": _slug(categories[0].split("->")[0]), "metric": "exact_match" if is_class else "rouge_l",
        "instructions": [definition, with_demo] if with_demo != definition else [definition],
        "labels": labels if is_class else None, "examples": [ex.model_dump() for ex in examples],
    }


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


def save_task_file(task: Task, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(task.model_dump(mode="json", exclude_defaults=False), indent=1) + "\n")
