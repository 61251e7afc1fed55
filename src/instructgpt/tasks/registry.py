"""The task registry: the built-in suite plus task files, split into train / val / test records."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from instructgpt.config.errors import UserError
from instructgpt.config.schema import TasksConfig
from instructgpt.tasks.loaders import load_task_paths
from instructgpt.tasks.task import BuiltinTask, Example, Task

SPLITS = ("train", "val", "test", "rl")  # rl: prompts the SFT model never sees, for comparisons and PPO
RL_SEED_OFFSET = 1_000_003
# how a chatty demonstrator pads an answer (TasksConfig.demo_filler)
FILLERS = ("Sure! {}", "Of course. {}", "Here you go: {}", "{} Hope this helps!", "Sure, here it is: {}",
           "{} Let me know if you need anything else.")  # the rl split is drawn with its own seed, so adding it changes no other split


def builtin_tasks() -> dict[str, BuiltinTask]:
    from instructgpt.tasks.builtin import BUILTIN_TASKS
    return {t.name: t for t in BUILTIN_TASKS}


def default_held_out_clusters() -> tuple[str, ...]:
    from instructgpt.tasks.builtin import DEFAULT_HELD_OUT_CLUSTERS
    return DEFAULT_HELD_OUT_CLUSTERS


@dataclass(frozen=True)
class SplitTask:
    """A task with its examples divided into splits, and whether its cluster is held out."""

    task: Task
    splits: dict[str, tuple[Example, ...]]
    held_out: bool

    def records(self, split: str, seed: int, filler: float = 0.0) -> list[dict[str, Any]]:
        """SFT records `{"task","prompt","completion"[, "references"]}`; templates drawn by seed. With
        `filler`, that fraction of train completions (tasks without labels) is padded as a chatty
        demonstrator would; the references stay the bare answer."""
        rng = random.Random(f"{seed}:{self.task.name}:{split}")
        pad = random.Random(f"{seed}:{self.task.name}:{split}:filler")
        out = []
        for ex in self.splits[split]:
            record = {"task": self.task.name, "prompt": self.task.render(ex, rng.randrange(1 << 30)),
                      "completion": ex.output}
            if split == "train" and filler and not self.task.labels and pad.random() < filler:
                record["completion"] = pad.choice(FILLERS).format(ex.output)
            if list(ex.all_references()) != [record["completion"]]:
                record["references"] = list(ex.all_references())
            out.append(record)
        return out


def load_tasks(cfg: TasksConfig) -> list[SplitTask]:
    """Every task the config names, split; names must be unique."""
    held_out = set(default_held_out_clusters() if cfg.held_out_clusters is None else cfg.held_out_clusters)
    tasks: list[SplitTask] = []
    if cfg.builtin:
        n = cfg.n_train + cfg.n_val + cfg.n_test
        for spec in builtin_tasks().values():
            task = spec.build(n, cfg.seed)
            ex = task.examples
            splits = {"train": ex[:cfg.n_train], "val": ex[cfg.n_train:cfg.n_train + cfg.n_val],
                      "test": ex[cfg.n_train + cfg.n_val:], "rl": _fresh(spec, cfg, ex)}
            tasks.append(SplitTask(task, splits, task.cluster in held_out))
    for task in load_task_paths(cfg.files):
        tasks.append(SplitTask(task, split_examples(task, cfg), task.cluster in held_out))
    names = [t.task.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"task name(s) {', '.join(dupes)} defined twice (key tasks.files); rename one")
    clusters = {t.task.cluster for t in tasks}
    unknown = held_out - clusters
    if cfg.held_out_clusters is not None and unknown:
        raise UserError(f"tasks.held_out_clusters: no task in cluster(s) {', '.join(sorted(unknown))} "
                        f"(clusters: {', '.join(sorted(clusters))})")
    return tasks


def _fresh(spec: BuiltinTask, cfg: TasksConfig, taken: tuple[Example, ...]) -> tuple[Example, ...]:
    """Up to n_rl examples from another seed whose inputs are in no other split (small spaces give fewer)."""
    if not cfg.n_rl:
        return ()
    seen = {e.input for e in taken}
    fresh = [e for e in spec.build(cfg.n_rl, cfg.seed + RL_SEED_OFFSET).examples if e.input not in seen]
    return tuple(fresh)


def split_examples(task: Task, cfg: TasksConfig) -> dict[str, tuple[Example, ...]]:
    """Shuffle by seed; test takes up to 20% (≤ n_test), val up to 10% (≤ n_val), train the rest
    (≤ n_train), and rl what train leaves (≤ n_rl)."""
    examples = list(task.examples)
    random.Random(f"{cfg.seed}:{task.name}").shuffle(examples)
    n_test = min(cfg.n_test, len(examples) // 5)
    n_val = min(cfg.n_val, len(examples) // 10)
    return {"test": tuple(examples[:n_test]), "val": tuple(examples[n_test:n_test + n_val]),
            "train": tuple(examples[n_test + n_val:][:cfg.n_train]),
            "rl": tuple(examples[n_test + n_val:][cfg.n_train:][:cfg.n_rl])}
