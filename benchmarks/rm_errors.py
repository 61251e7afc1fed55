"""Where does the reward model disagree with the oracle? Its accuracy on the oracle's comparisons
of a run (`comparisons-oracle.jsonl`), by the feature that separates each untied pair and by
task, next to a ranking that needs no training: the SFT model's log-likelihood of each response.
With `--policies dpo ppo`, also each trained policy's log-likelihood and its implicit reward
log π(y|x) − log π_SFT(y|x) (the reward DPO fits).

A pair's kind is the first of the labeler's features (tasks/labeler.py) on which its two
responses differ: `correct` (one is right, or more nearly right, under the task's metric), then
`form`, `chatter`, `length`.

    python benchmarks/rm_errors.py [--run runs/demo] [--rm runs/demo/rm] [--label NAME] [--policies dpo ppo]

Needs a finished run folder (`make demo` makes runs/demo). Prints both tables and adds the run's
row to benchmarks/results/rm_errors.json.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from instructgpt.data.comparisons import Comparison, load_comparisons
from instructgpt.data.packing import pad_batch
from instructgpt.data.preference import encode_completion, encode_prompt
from instructgpt.models.build import load_model, pad_id
from instructgpt.models.reward import load_score_model
from instructgpt.stages.dpo import sequence_logprobs
from instructgpt.stages.judge import reward_of
from instructgpt.tasks.labeler import Query, features
from instructgpt.tasks.registry import builtin_tasks
from instructgpt.tokenizer.train import load_tokenizer

KINDS = ("correct", "form", "chatter", "length")


def pair_kind(query: Query, better: str, worse: str) -> str:
    """The first labeler feature on which the two responses differ."""
    a, b = features(query, better), features(query, worse)
    return next((k for k in KINDS if a[k] != b[k]), "length")


@torch.no_grad()
def answer_logprobs(model, tokenizer, comparisons: list[Comparison], max_len: int = 256, batch_size: int = 64
                    ) -> list[float]:
    """log π(response + end token | prompt) of every completion, as DPO scores a completion."""
    model.eval()
    encoded = [encode_completion(tokenizer, encode_prompt(tokenizer, c.prompt), text, max_len)
               for c in comparisons for text in c.completions]
    pad = pad_id(tokenizer)
    return [float(v) for i in range(0, len(encoded), batch_size)
            for v in sequence_logprobs(model, pad_batch(encoded[i:i + batch_size], pad))]


def labeled_pairs(comparisons: list[Comparison]) -> list[tuple[int, int, str, str]]:
    """(better, worse, kind, task) of every untied pair, as indices into the flat list of completions."""
    tasks = builtin_tasks()
    out, first = [], 0
    for c in comparisons:
        spec = tasks[c.task]
        query = Query(c.prompt[-1]["content"], (c.reference,), spec.metric, spec.kind, spec.labels)
        out += [(first + w, first + l, pair_kind(query, c.completions[w], c.completions[l]), c.task)
                for w, l in c.pairs()]
        first += len(c.completions)
    return out


def tally(pairs: list[tuple[int, int, str, str]], scores: list[float]) -> dict[str, dict[str, list[int]]]:
    """[right, total] of the pairs `scores` orders right, by kind (and `all`) and by task."""
    by = {"kind": defaultdict(lambda: [0, 0]), "task": defaultdict(lambda: [0, 0])}
    for better, worse, kind, task in pairs:
        right = int(scores[better] > scores[worse])
        for group, key in (("kind", kind), ("kind", "all"), ("task", task)):
            by[group][key][0] += right
            by[group][key][1] += 1
    return by


def rates(counts: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    return {k: {"accuracy": round(r / n, 4), "pairs": n} for k, (r, n) in counts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a finished run folder")
    ap.add_argument("--rm", default=None, help="a reward model folder (default: the run's rm/)")
    ap.add_argument("--label", default=None, help="the row's name in the results file (default: the run's name)")
    ap.add_argument("--policies", nargs="*", default=[], help="policy folders of the run (dpo, ppo, ...) to rank "
                    "by their log-likelihood and implicit reward too")
    ap.add_argument("--out", default="benchmarks/results/rm_errors.json")
    args = ap.parse_args()
    run = Path(args.run)
    rm_path = Path(args.rm) if args.rm else run / "rm"
    comparisons = load_comparisons(str(run / "comparisons-oracle.jsonl"))
    rm, tokenizer = load_score_model(rm_path).eval(), load_tokenizer(rm_path)
    rewards = reward_of(rm, tokenizer, [c.prompt for c in comparisons for _ in c.completions],
                        [text for c in comparisons for text in c.completions], max_len=256)
    sft = load_model(str(run / "sft"))
    logprobs = answer_logprobs(sft, load_tokenizer(str(run / "sft")), comparisons)
    pairs = labeled_pairs(comparisons)
    rm_by, lm_by = tally(pairs, rewards), tally(pairs, logprobs)
    columns = {"RM": rm_by["kind"], "SFT log-lik.": lm_by["kind"]}
    for name in args.policies:
        policy = answer_logprobs(load_model(str(run / name)), load_tokenizer(str(run / name)), comparisons)
        columns[f"{name} log-lik."] = tally(pairs, policy)["kind"]
        columns[f"{name} implicit"] = tally(pairs, [a - b for a, b in zip(policy, logprobs)])["kind"]
    print(f"{'pairs that differ in':<22} {'pairs':>6}" + "".join(f" {c:>{max(6, len(c))}}" for c in columns))
    for kind in (*KINDS, "all"):
        if kind in rm_by["kind"]:
            n = rm_by["kind"][kind][1]
            print(f"{kind:<22} {n:>6}" + "".join(f" {by[kind][0] / n:>{max(6, len(c))}.3f}" for c, by in columns.items()))
    print(f"\n{'task':<28} {'pairs':>6} {'RM':>6}")
    for task, (r, n) in sorted(rm_by["task"].items(), key=lambda kv: kv[1][0] / kv[1][1]):
        print(f"{task:<28} {n:>6} {r / n:>6.3f}")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[args.label or run.name] = {"rm": str(rm_path), "rm_by_kind": rates(rm_by["kind"]),
                                       "sft_loglik_by_kind": rates(lm_by["kind"]), "rm_by_task": rates(rm_by["task"])}
    for name in args.policies:
        results[args.label or run.name] |= {f"{name}_loglik_by_kind": rates(columns[f"{name} log-lik."]),
                                            f"{name}_implicit_by_kind": rates(columns[f"{name} implicit"])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
