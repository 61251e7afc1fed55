"""The whole recipe: tasks -> tokenizer -> pretrain -> sft -> comparisons -> reward -> ppo, ppo-ptx, dpo
-> eval -> report; each stage a run folder (or file) skipped once complete. `stages.json` records
what each stage did in the latest invocation (done, complete before, failed, not run) and its time."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from instructgpt.checkpoint import is_complete, mark_complete
from instructgpt.config import EvalModel, RunConfig, UserError, dump_config
from instructgpt.config.schema import PreferenceData
from instructgpt.stages import comparisons, dpo, ppo, pretrain, reward, sft, tasks, tokenizer
from instructgpt.utils import interrupt
from instructgpt.utils.io import atomic_write_text, clean_stale_tmp, require_writable
from instructgpt.utils.logging import info

STAGES = ("tasks", "tokenizer", "pretrain", "sft", "comparisons", "reward", "ppo", "ppo-ptx", "dpo", "eval",
          "report")
# what each stage writes inside the run folder (removed by --from)
OUTPUTS = {"tasks": ["tasks"], "tokenizer": ["tokenizer"], "pretrain": ["pretrain"], "sft": ["sft"],
           "comparisons": ["comparisons.jsonl", "comparisons-heldout.jsonl", "comparisons-oracle.jsonl",
                           "comparisons.json"],
           "reward": ["rm"], "ppo": ["ppo"], "ppo-ptx": ["ppo-ptx"], "dpo": ["dpo"], "eval": ["eval"],
           "report": ["report.md", "report.html", "plots"]}


class Recorder:
    """Times each stage and keeps `stages.json` true after every change (a crash leaves it true too)."""

    def __init__(self, run_dir: Path):
        from instructgpt.eval.report import STAGES_FILE
        self.path = run_dir / STAGES_FILE
        self.stages: dict[str, dict[str, Any]] = {name: {"status": "not run"} for name in STAGES}
        self.started = time.time()
        self._save()

    def run(self, name: str, complete: bool, start: Callable[[], object], skip_reason: str | None = None) -> None:
        if skip_reason:
            self.stages[name] = {"status": "skipped", "reason": skip_reason}
            info(f"{name}: skipped ({skip_reason})")
        elif complete:
            self.stages[name] = {"status": "complete before", "seconds": 0.0}
            info(f"{name}: complete, skipped")
        else:
            began = time.time()
            self.stages[name] = {"status": "running"}
            self._save()
            try:
                interrupt.check()
                start()
                interrupt.check()
            except BaseException as e:  # noqa: BLE001 - recorded, then raised again
                status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
                self.stages[name] = {"status": status, "seconds": time.time() - began,
                                     "error": f"{type(e).__name__}: {e}"[:500]}
                self._save()
                raise
            self.stages[name] = {"status": "done", "seconds": time.time() - began}
            info(f"{name}: done in {self.stages[name]['seconds']:.0f} s")
        self._save()

    def _save(self) -> None:
        total = time.time() - self.started
        atomic_write_text(self.path, json.dumps({"total_seconds": total, "stages": self.stages}, indent=1) + "\n")

    def table(self) -> str:
        rows = [f"  {name:<12} {s['status']:<16} {s.get('seconds', 0.0):7.1f} s" for name, s in self.stages.items()]
        return "\n".join(rows + [f"  {'total':<12} {'':<16} {time.time() - self.started:7.1f} s"])


def seeded(cfg: RunConfig) -> RunConfig:
    """`seed` set: every stage's seed becomes it (tasks, training, sampling, evaluation)."""
    if cfg.seed is None:
        return cfg
    s = cfg.seed
    return cfg.model_copy(update={
        "tasks": cfg.tasks.model_copy(update={"seed": s}),
        "pretrain": cfg.pretrain.model_copy(update={"train": cfg.pretrain.train.model_copy(update={"seed": s})}),
        "sft": cfg.sft.model_copy(update={"train": cfg.sft.train.model_copy(update={"seed": s})}),
        "comparisons": cfg.comparisons.model_copy(update={"seed": s}),
        "reward": cfg.reward.model_copy(update={"train": cfg.reward.train.model_copy(update={"seed": s})}),
        "ppo": cfg.ppo.model_copy(update={"train": cfg.ppo.train.model_copy(update={"seed": s})}),
        "dpo": cfg.dpo.model_copy(update={"train": cfg.dpo.train.model_copy(update={"seed": s})}),
        "eval": cfg.eval.model_copy(update={"seed": s + 1234}),
    })


def redo_from(run_dir: Path, stage: str) -> None:
    """Remove the outputs of `stage` and of every stage after it."""
    if stage not in STAGES:
        raise UserError(f"--from {stage}: not a stage; one of {', '.join(STAGES)}")
    for name in STAGES[STAGES.index(stage):]:
        for rel in OUTPUTS[name]:
            target = run_dir / rel
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    info(f"run: redoing {stage} and every stage after it")


def run(cfg: RunConfig, redo_from_stage: str | None = None) -> Path:
    """Run every stage into `runs_dir/name/`; a complete stage is skipped, an interrupted one
    resumes from its last checkpoint. Prints the time of each stage and the total."""
    cfg = seeded(cfg)
    run_dir = Path(cfg.runs_dir) / cfg.name
    require_writable(run_dir, key="runs_dir")  # before any stage: not at the first write
    clean_stale_tmp(run_dir)
    if redo_from_stage:
        redo_from(run_dir, redo_from_stage)
    atomic_write_text(run_dir / "run.yaml", dump_config(cfg))
    info(f"run '{cfg.name}' in {run_dir}")
    rec = Recorder(run_dir)
    try:
        _stages(cfg, run_dir, rec)
    finally:
        if rec.stages["report"]["status"] == "not run":
            _write_report(run_dir, rec)
        info(f"run '{cfg.name}': time per stage\n{rec.table()}")
        if (run_dir / "report.html").is_file():
            from instructgpt.eval import report
            info(f"report: {run_dir / 'report.html'} (and report.md)\n{report.headline(run_dir / 'eval')}")
    return run_dir


def _stages(cfg: RunConfig, run_dir: Path, rec: Recorder) -> None:
    tasks_dir = run_dir / "tasks"
    rec.run("tasks", is_complete(tasks_dir), lambda: tasks.run(cfg.tasks.model_copy(update={"out": str(tasks_dir)})))

    corpus = tasks_dir / "corpus.txt"
    tok_dir, pre_dir = run_dir / "tokenizer", run_dir / "pretrain"
    base = "base_model is set" if cfg.base_model else None
    tok_files = [str(corpus)] + [str(f) for f in tasks.training_files(tasks_dir)]
    rec.run("tokenizer", is_complete(tok_dir), lambda: tokenizer.run(
        cfg.tokenizer.model_copy(update={"out": str(tok_dir), "files": tok_files})), base)
    rec.run("pretrain", is_complete(pre_dir), lambda: pretrain.run(cfg.pretrain.model_copy(update={
        "out": str(pre_dir), "tokenizer": str(tok_dir), "corpus": [str(corpus)]}), resume=True), base)

    sft_dir = run_dir / "sft"
    start = cfg.base_model or str(pre_dir)
    model = cfg.sft.model.model_copy(update={"path": start})
    rec.run("sft", is_complete(sft_dir), lambda: sft.run(cfg.sft.model_copy(update={
        "out": str(sft_dir), "tasks_dir": str(tasks_dir), "model": model,
        "lm_corpus": [str(corpus)] if cfg.sft.lm_windows else [], "lm_val_fraction": cfg.pretrain.val_fraction}),
        resume=True))

    ranked = run_dir / "comparisons.jsonl"
    sft_model = cfg.sft.model.model_copy(update={"path": str(sft_dir)})
    rec.run("comparisons", (run_dir / "comparisons.json").is_file(),  # written after the record files
            lambda: comparisons.run(cfg.comparisons.model_copy(update={
                "out": str(ranked), "tasks_dir": str(tasks_dir), "model": sft_model})))
    held = [PreferenceData(path=str(run_dir / f"comparisons-{name}.jsonl")) for name in ("heldout", "oracle")]
    rm_dir = run_dir / "rm"
    rec.run("reward", is_complete(rm_dir), lambda: reward.run(cfg.reward.model_copy(update={
        "out": str(rm_dir), "model": sft_model, "data": [PreferenceData(path=str(ranked))], "eval_data": held}),
        resume=True))

    for name, ptx in (("ppo", 0.0), ("ppo-ptx", cfg.ptx_coef)):
        out = run_dir / name
        rec.run(name, is_complete(out), lambda: ppo.run(cfg.ppo.model_copy(update={
            "out": str(out), "model": sft_model, "reward_model": str(rm_dir), "tasks_dir": str(tasks_dir),
            "ptx_coef": ptx, "ptx_corpus": [str(corpus)] if ptx else [],
            "ptx_val_fraction": cfg.pretrain.val_fraction}), resume=True))
    dpo_dir = run_dir / "dpo"
    rec.run("dpo", is_complete(dpo_dir), lambda: dpo.run(cfg.dpo.model_copy(update={
        "out": str(dpo_dir), "model": sft_model, "data": [PreferenceData(path=str(ranked))],
        "tasks_dir": str(tasks_dir), "reward_model": str(rm_dir)}), resume=True))

    eval_dir = run_dir / "eval"
    rec.run("eval", _eval_current(eval_dir), lambda: _evaluate(cfg, run_dir, start))
    _write_report(run_dir, rec)
    info(f"run '{cfg.name}' complete: {run_dir}")


def _evaluate(cfg: RunConfig, run_dir: Path, pretrained: str) -> None:
    from instructgpt.eval import evaluate
    # ChatML turns for the pretrained baselines too: plain-text prompts ('PROMPT\nAnswer:', EvalModel.
    # prompt_format=text) measured no better on the demo (win rate 0.296 / 0.298 against 0.307 / 0.328)
    models = [EvalModel(name="pretrained", path=pretrained)]
    if cfg.few_shot:
        models.append(EvalModel(name="pretrained-prompted", path=pretrained, few_shot=cfg.few_shot))
    models += [EvalModel(name=n, path=str(run_dir / n)) for n in ("sft", "ppo", "ppo-ptx", "dpo")]
    out = run_dir / "eval"
    evaluate.run(cfg.eval.model_copy(update={
        "models": models, "baseline": "sft", "tasks_dir": str(run_dir / "tasks"), "reward_model": str(run_dir / "rm"),
        "comparisons": [str(run_dir / f"comparisons-{n}.jsonl") for n in ("oracle", "heldout")], "out": str(out),
        "lm_shards": str(run_dir / "pretrain" / "shards") if (run_dir / "pretrain" / "shards").is_dir() else None}))
    mark_complete(out, models=len(models))


def _eval_current(eval_dir: Path) -> bool:
    """Complete, and every model it scored is the one on disk now (not redone since)."""
    from instructgpt.eval.evaluate import is_current
    results = [json.loads(p.read_text()) for p in eval_dir.glob("*.json")] if is_complete(eval_dir) else []
    return bool(results) and all(is_current(r) for r in results if "fingerprint" in r)


def _write_report(run_dir: Path, rec: Recorder) -> None:
    """The report never stops a run: a failure here is recorded and printed."""
    def write() -> None:
        from instructgpt.eval import report
        report.write(run_dir, run_dir / "eval")
    try:
        rec.run("report", False, write)
    except Exception as e:  # noqa: BLE001
        info(f"report: failed ({type(e).__name__}: {e})")
