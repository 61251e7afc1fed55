"""The seed's claim, measured: with one task given 10x fewer examples than the others, does the
task-balanced loss L = (1/N) Σ_i (1/M_i) Σ_j L_ij serve it better than a token mean, and how do
both compare with training that task alone?

    python benchmarks/seed_claim.py [--run runs/demo] [--small-task extract_name] [--steps 300]

Needs a run folder with tasks/ and pretrain/ (`make demo` makes runs/demo). Writes
benchmarks/results/seed_claim.json and prints a table of held-in test scores per task.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from instructgpt.config import SFTConfig, load_config
from instructgpt.stages import sft


def shrink_task(tasks_dir: Path, out: Path, task: str, factor: int) -> int:
    """A copy of `tasks_dir` whose `task` keeps 1/factor of its training examples."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(tasks_dir, out)
    lines = (out / task / "train.jsonl").read_text().splitlines(keepends=True)
    kept = lines[:max(1, len(lines) // factor)]
    (out / task / "train.jsonl").write_text("".join(kept))
    return len(kept)


def only_task(tasks_dir: Path, out: Path, task: str) -> None:
    """`tasks_dir` restricted to `task` (the index names only it)."""
    index = json.loads((tasks_dir / "index.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").write_text(json.dumps({task: index[task]}))
    if (out / task).exists():
        shutil.rmtree(out / task)
    shutil.copytree(tasks_dir / task, out / task)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="run folder with tasks/ and pretrain/")
    ap.add_argument("--config", default="run/demo", help="run config whose sft section is used")
    ap.add_argument("--small-task", default="extract_name")
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--steps", type=int, default=None, help="SFT steps (default: the config's)")
    ap.add_argument("--work", default="benchmarks/work/seed_claim")
    ap.add_argument("--out", default="benchmarks/results/seed_claim.json")
    args = ap.parse_args()
    from instructgpt.config import RunConfig
    run_dir, work = Path(args.run), Path(args.work)
    base: SFTConfig = load_config(RunConfig, args.config).sft
    train = base.train.model_copy(update={"progress": False, **({"max_steps": args.steps} if args.steps else {})})
    eval_cfg = base.eval.model_copy(update={"baseline": False, "samples_per_task": 0})
    kept = shrink_task(run_dir / "tasks", work / "tasks_small", args.small_task, args.factor)
    only_task(work / "tasks_small", work / "tasks_alone", args.small_task)
    print(f"{args.small_task}: {kept} training examples (others: 1/{args.factor} more each)", file=sys.stderr)
    variants = {
        "task_balanced": ("tasks_small", "task_balanced"),
        "token_mean": ("tasks_small", "token_mean"),
        "alone": ("tasks_alone", "token_mean"),
    }
    results = {}
    for name, (tasks, reduction) in variants.items():
        cfg = base.model_copy(update={
            "out": str(work / name), "tasks_dir": str(work / tasks), "reduction": reduction,
            "model": base.model.model_copy(update={"path": str(run_dir / "pretrain")}),
            "train": train, "eval": eval_cfg})
        out = sft.run(cfg)
        results[name] = json.loads((out / "scores.json").read_text())["test"]
    index = json.loads((run_dir / "tasks" / "index.json").read_text())
    held_in = [t for t, meta in index.items() if not meta["held_out"]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"small_task": args.small_task, "kept": kept, "factor": args.factor,
                                          "steps": train.max_steps, "scores": results}, indent=1) + "\n")
    print(table(results, held_in, args.small_task))
    return 0


def table(results: dict[str, dict[str, float]], held_in: list[str], small: str) -> str:
    names = list(results)
    w = max(len(t) for t in held_in) + 3
    lines = [f"| {'task':<{w}} | " + " | ".join(f"{n:>13}" for n in names) + " |",
             "|" + "-" * (w + 2) + "|" + "|".join("-" * 15 for _ in names) + "|"]
    for task in held_in:
        label = f"**{task}**" if task == small else task
        cells = [f"{results[n][task]:13.3f}" if task in results[n] else f"{'':>13}" for n in names]
        lines.append(f"| {label:<{w}} | " + " | ".join(cells) + " |")
    means = []
    for n in names:
        vals = [results[n][t] for t in held_in if t in results[n]]
        means.append(f"{sum(vals) / len(vals):13.3f}" if len(vals) > 1 else f"{'':>13}")
    lines.append(f"| {'mean (held-in)':<{w}} | " + " | ".join(means) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
