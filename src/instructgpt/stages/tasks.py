"""Stage `tasks`: write every task's train/val/test records, an index, and the pretraining corpus."""
from __future__ import annotations

import json
from pathlib import Path

from instructgpt.checkpoint import mark_complete
from instructgpt.config import TasksConfig, dump_config, require
from instructgpt.tasks.corpus import write_corpus
from instructgpt.tasks.registry import SPLITS, load_tasks
from instructgpt.utils.io import atomic_dir, atomic_write_text
from instructgpt.utils.logging import info

INDEX = "index.json"


def run(cfg: TasksConfig) -> Path:
    """`out/<task>/{train,val,test}.jsonl`, `out/index.json` and `out/corpus.txt`, in one rename."""
    require(cfg, "out")
    out = Path(cfg.out)
    tasks = load_tasks(cfg)
    with atomic_dir(out) as tmp:
        index = {}
        for split_task in tasks:
            task = split_task.task
            for split in SPLITS:
                lines = [json.dumps(r, ensure_ascii=False) for r in split_task.records(split, cfg.seed, cfg.demo_filler)]
                atomic_write_text(tmp / task.name / f"{split}.jsonl", "".join(line + "\n" for line in lines))
            index[task.name] = {"kind": task.kind, "cluster": task.cluster, "metric": task.metric,
                                "labels": list(task.labels) if task.labels else None,
                                "instructions": list(task.instructions),
                                "held_out": split_task.held_out,
                                **{split: len(split_task.splits[split]) for split in SPLITS}}
        corpus_bytes = write_corpus(tmp / "corpus.txt", cfg.seed, int(cfg.corpus_mb * 1e6)) if cfg.corpus_mb else 0
        atomic_write_text(tmp / INDEX, json.dumps(index, indent=1) + "\n")
        atomic_write_text(tmp / "run.yaml", dump_config(cfg))
        mark_complete(tmp, tasks=len(index), corpus_bytes=corpus_bytes)
    held = sorted({v["cluster"] for v in index.values() if v["held_out"]})
    info(f"tasks: {len(index)} tasks in {len({v['cluster'] for v in index.values()})} clusters "
         f"(held out: {', '.join(held) or 'none'}), corpus {corpus_bytes / 1e6:.1f} MB -> {out}")
    return out


def read_index(tasks_dir: str | Path) -> dict[str, dict]:
    return json.loads((Path(tasks_dir) / INDEX).read_text())


def training_files(tasks_dir: str | Path, split: str = "train", held_out: bool = False) -> list[Path]:
    """The `split` files of held-in tasks (or of held-out ones)."""
    index = read_index(tasks_dir)
    return [Path(tasks_dir) / name / f"{split}.jsonl" for name, meta in index.items()
            if meta["held_out"] == held_out]


