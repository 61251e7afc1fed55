"""How high can a win rate against SFT go on the demo? Answers that need no training, judged the
way `instructgpt eval` judges (the `heldout` labeler, its noise set on the baseline's samples;
the baseline's sampled responses at the eval temperature and seed, 4 a prompt; ties ½):

- `answer key`: the task's reference answer to every prompt, what a perfect policy would say;
- `greedy`: the baseline's own greedy answer (a policy sharpened to its mode);
- `greedy, no filler`: the same with the chatty demonstrators' padding ("Sure! ...") cut off;
- `sampled, no filler`: the baseline's judged sample itself, padding cut off.

    python benchmarks/win_ceiling.py [--run runs/demo] [--label NAME]

Needs a finished run folder (`make demo` makes runs/demo). Prints the table and adds the run's row
to benchmarks/results/win_ceiling.json.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from instructgpt.config import EvalConfig, EvalModel, RunConfig, load_config
from instructgpt.data.sft import first_examples
from instructgpt.eval.evaluate import (calibrated_judge, decoding_args, encode_for, labeler_query, load_suite,
                                       prompt_wins)
from instructgpt.eval.stats import mean
from instructgpt.generation import sample_many
from instructgpt.models.build import load_model
from instructgpt.tasks.labeler import ORACLE
from instructgpt.tasks.registry import FILLERS
from instructgpt.tokenizer.train import load_tokenizer

PADDING = [re.compile("^" + re.escape(f).replace(re.escape("{}"), "(.*)") + "$", re.S) for f in FILLERS]


def without_filler(text: str) -> str:
    """`text` with a demonstrator's padding around the answer removed (unchanged if it has none)."""
    for pattern in PADDING:
        if match := pattern.match(text.strip()):
            return match.group(1)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a finished run folder")
    ap.add_argument("--label", default=None, help="the row's name in the results file (default: the run's name)")
    ap.add_argument("--win-samples", type=int, default=4,
                    help="baseline samples a prompt (0: the run's eval.win_samples)")
    ap.add_argument("--out", default="benchmarks/results/win_ceiling.json")
    args = ap.parse_args()
    run = Path(args.run)
    eval_cfg = load_config(RunConfig, run / "run.yaml").eval if (run / "run.yaml").is_file() else EvalConfig()
    spec = EvalModel(name="sft", path=str(run / "sft"))
    cfg = eval_cfg.model_copy(update={"models": [spec], "tasks_dir": str(run / "tasks"), "task_files": []})
    tasks = load_suite(cfg)
    model, tokenizer = load_model(spec.path), load_tokenizer(spec.path)
    judged = first_examples(tasks, cfg.split, cfg.win_prompts_per_task)
    prompts = [encode_for(spec, tokenizer, t, ex, cfg.split) for t, ex in judged]
    kwargs = decoding_args(spec, tokenizer, cfg)
    n = args.win_samples or cfg.win_samples
    base = [[s.text for s in row] for row in sample_many(model, tokenizer, prompts, n=n, temperature=cfg.temperature,
                                                        seed=cfg.seed, **kwargs)]
    greedy = [r[0].text for r in sample_many(model, tokenizer, prompts, **kwargs)]
    judge = calibrated_judge(model, spec, judged, cfg)
    queries = [labeler_query(t, ex) for t, ex in judged]
    held_in = [not t.held_out for t, _ in judged]
    # each prompt's answers, one against each of the baseline's samples
    answers = {"answer key": [[min(ex["references"], key=len)] * n for _, ex in judged],
               "greedy": [[g] * n for g in greedy], "greedy, no filler": [[without_filler(g)] * n for g in greedy],
               "sampled, no filler": [[without_filler(b) for b in row] for row in base]}
    rows = {}
    print(f"{run}: {len(judged)} prompts x {n} samples, judge noise {judge.noise:.3f}; the baseline's samples pad "
          f"{mean([without_filler(b) != b for row in base for b in row]):.3f} of answers, its greedy answers "
          f"{mean([without_filler(g) != g for g in greedy]):.3f}")
    print(f"{'answers':<20} {'win rate':>9} {'held-in prompts':>16} {'oracle':>7}")
    for name, texts in answers.items():
        wins, oracle = prompt_wins(judge, queries, texts, base), prompt_wins(ORACLE, queries, texts, base)
        rows[name] = {"win_rate": mean(wins), "held_in_win_rate": mean([w for w, h in zip(wins, held_in) if h]),
                      "oracle_win_rate": mean(oracle)}
        print(f"{name:<20} {rows[name]['win_rate']:>9.3f} {rows[name]['held_in_win_rate']:>16.3f} "
              f"{rows[name]['oracle_win_rate']:>7.3f}")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[args.label or run.name] = {"prompts": len(judged), "samples_a_prompt": n, "judge_noise": judge.noise,
                                        "answers": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
