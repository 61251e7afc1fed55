"""The whole recipe: tasks -> tokenizer -> pretrain -> sft, each stage a run folder skipped once complete."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from instructgpt.checkpoint import is_complete
from instructgpt.config import RunConfig, dump_config
from instructgpt.stages import pretrain, sft, tasks, tokenizer
from instructgpt.utils.io import atomic_write_text, clean_stale_tmp
from instructgpt.utils.logging import info


def run(cfg: RunConfig) -> Path:
    """Run every stage into `runs_dir/name/`; a complete stage is skipped, an interrupted one
    resumes from its last checkpoint."""
    run_dir = Path(cfg.runs_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(run_dir)
    atomic_write_text(run_dir / "run.yaml", dump_config(cfg))
    info(f"run '{cfg.name}' in {run_dir}")

    tasks_dir = run_dir / "tasks"
    _stage("tasks", tasks_dir, lambda: tasks.run(cfg.tasks.model_copy(update={"out": str(tasks_dir)})))

    corpus = tasks_dir / "corpus.txt"
    tok_dir = run_dir / "tokenizer"
    tok_files = [str(corpus)] + [str(f) for f in tasks.training_files(tasks_dir)]
    _stage("tokenizer", tok_dir, lambda: tokenizer.run(
        cfg.tokenizer.model_copy(update={"out": str(tok_dir), "files": tok_files})))

    pre_dir = run_dir / "pretrain"
    _stage("pretrain", pre_dir, lambda: pretrain.run(cfg.pretrain.model_copy(update={
        "out": str(pre_dir), "tokenizer": str(tok_dir), "corpus": [str(corpus)]}), resume=True))

    sft_dir = run_dir / "sft"
    model = cfg.sft.model.model_copy(update={"path": str(pre_dir)})
    _stage("sft", sft_dir, lambda: sft.run(cfg.sft.model_copy(update={
        "out": str(sft_dir), "tasks_dir": str(tasks_dir), "model": model}), resume=True))
    info(f"run '{cfg.name}' complete: {run_dir}")
    return run_dir


def _stage(name: str, out: Path, start: Callable[[], object]) -> None:
    if is_complete(out):
        info(f"{name}: complete, skipped ({out})")
        return
    start()
