"""The whole recipe: tasks -> tokenizer -> pretrain -> sft -> comparisons -> reward -> ppo, ppo-ptx, dpo;
each stage a run folder (or file) skipped once complete."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from instructgpt.checkpoint import is_complete
from instructgpt.config import RunConfig, dump_config
from instructgpt.config.schema import PreferenceData
from instructgpt.stages import comparisons, dpo, ppo, pretrain, reward, sft, tasks, tokenizer
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

    ranked = run_dir / "comparisons.jsonl"
    sft_model = cfg.sft.model.model_copy(update={"path": str(sft_dir)})
    if (run_dir / "comparisons.json").is_file():  # written after the three record files
        info(f"comparisons: complete, skipped ({ranked})")
    else:
        comparisons.run(cfg.comparisons.model_copy(update={"out": str(ranked), "tasks_dir": str(tasks_dir),
                                                           "model": sft_model}))
    held = [PreferenceData(path=str(run_dir / f"comparisons-{name}.jsonl")) for name in ("heldout", "oracle")]
    rm_dir = run_dir / "rm"
    _stage("reward", rm_dir, lambda: reward.run(cfg.reward.model_copy(update={
        "out": str(rm_dir), "model": sft_model, "data": [PreferenceData(path=str(ranked))], "eval_data": held}), resume=True))

    for name, ptx in (("ppo", 0.0), ("ppo-ptx", cfg.ptx_coef)):
        out = run_dir / name
        _stage(name, out, lambda: ppo.run(cfg.ppo.model_copy(update={
            "out": str(out), "model": sft_model, "reward_model": str(rm_dir), "tasks_dir": str(tasks_dir),
            "ptx_coef": ptx, "ptx_corpus": [str(corpus)] if ptx else []}), resume=True))
    dpo_dir = run_dir / "dpo"
    _stage("dpo", dpo_dir, lambda: dpo.run(cfg.dpo.model_copy(update={
        "out": str(dpo_dir), "model": sft_model, "data": [PreferenceData(path=str(ranked))], "tasks_dir": str(tasks_dir),
        "reward_model": str(rm_dir)}), resume=True))
    info(f"run '{cfg.name}' complete: {run_dir}")
    return run_dir


def _stage(name: str, out: Path, start: Callable[[], object]) -> None:
    if is_complete(out):
        info(f"{name}: complete, skipped ({out})")
        return
    start()
