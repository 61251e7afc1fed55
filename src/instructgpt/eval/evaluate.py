"""`instructgpt eval`: every model answers the same prompts; task metrics score the greedy answers,
the `heldout` labeler judges sampled answers against the baseline's, and RL models report their
KL to the baseline. One JSON per model under `out/`, plus `summary.json`."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from instructgpt.config import EvalConfig, EvalModel, SFTConfig, TasksConfig, UserError
from instructgpt.data.comparisons import load_comparisons, pair_accuracy
from instructgpt.data.preference import encode_completion, encode_prompt
from instructgpt.data.sft import TaskData, first_examples, load_task_data, to_example, warn_cut_off
from instructgpt.data.shards import load_shards
from instructgpt.eval.stats import bootstrap_interval, fmt, group_means, mean, win_text
from instructgpt.generation import Sample, sample_many
from instructgpt.generation.decode import left_pad
from instructgpt.models.build import load_model, pad_id
from instructgpt.models.parts import action_logprobs
from instructgpt.models.reward import load_score_model, score_sequences
from instructgpt.objectives.lm import causal_lm_loss
from instructgpt.tasks.labeler import CALIBRATION_SAMPLES, ORACLE, PROFILES, Labeler, Query
from instructgpt.tasks.metrics import score
from instructgpt.tokenizer.chat import stop_ids
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.utils.io import atomic_write_json
from instructgpt.utils.logging import info

SAMPLES_SHOWN = 1  # win-rate responses per task kept in each model's JSON for the report


def load_suite(cfg: EvalConfig) -> list[TaskData]:
    """A run's tasks (held-in and held-out) and any task files never trained on (held out, all test)."""
    tasks = load_task_data(SFTConfig(tasks_dir=cfg.tasks_dir)) if cfg.tasks_dir else []
    tasks += unseen_tasks(cfg.task_files, cfg.seed)
    if not tasks:
        raise UserError("eval: no tasks; give a run's tasks folder (tasks_dir / --tasks-dir) or task files (--tasks)")
    return tasks


def unseen_tasks(files: Sequence[str], seed: int) -> list[TaskData]:
    """Task files as held-out tasks whose every example is a test prompt."""
    if not files:
        return []
    from instructgpt.tasks.registry import load_tasks
    split = load_tasks(TasksConfig(builtin=False, files=list(files), n_train=0, n_val=0, n_test=0, seed=seed))
    out = []
    for st in split:
        t, rng = st.task, random.Random(f"{seed}:{st.task.name}:eval")
        records = [{"task": t.name, "prompt": t.render(ex, rng.randrange(1 << 30)), "completion": ex.output,
                    "references": list(ex.all_references())} for ex in t.examples]
        examples = [to_example(r, t.name, f"task {t.name} (example {i})", t.labels) for i, r in enumerate(records)]
        out.append(TaskData(t.name, t.cluster, t.kind, t.metric, t.labels, True,
                            {"train": [], "val": [], "test": examples, "rl": []}, t.instructions))
    return out


def fingerprint(path: str | Path) -> str:
    """What identifies a trained model folder: a hash of its completion marker (else its config)."""
    folder = Path(path)
    for name in ("complete.json", "config.json"):
        if (folder / name).is_file():
            return hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]
    raise UserError(f"{folder}: not a model folder (no config.json); give a folder written by a stage or import")


def is_current(result: dict[str, Any]) -> bool:
    """The model a result scored is still the one on disk (not trained again since)."""
    return Path(result["path"]).is_dir() and fingerprint(result["path"]) == result["fingerprint"]


def prompt_messages(task: TaskData, example: dict, split: str, k: int) -> list[dict[str, str]]:
    """The example's prompt, after `k` other examples of the task as earlier turns (few-shot)."""
    shots = [ex for ex in task.splits["train"] or task.splits[split] if ex is not example][:k]
    return [m for ex in shots for m in ex["messages"]] + list(example["messages"][:-1])


ANSWER_CUE = "\nAnswer:"
TEXT_STOPS = ("\n",)


def prompt_text(task: TaskData, example: dict, split: str, k: int) -> str:
    """The plain-text form of `prompt_messages`, for a pretrained model that never saw ChatML:
    each shot is 'PROMPT\nAnswer: ANSWER' and a blank line; the prompt ends at 'Answer:'."""
    messages = prompt_messages(task, example, split, k)
    pairs = zip(messages[:-1:2], messages[1::2])
    shots = "".join(f"{user['content']}{ANSWER_CUE} {reply['content']}\n\n" for user, reply in pairs)
    return f"{shots}{messages[-1]['content']}{ANSWER_CUE}"


def encode_for(spec: EvalModel, tokenizer, task: TaskData, example: dict, split: str) -> list[int]:
    """The prompt ids of one example in the model's prompt format."""
    if spec.prompt_format == "text":
        return tokenizer.encode(prompt_text(task, example, split, spec.few_shot), add_special_tokens=False)
    return encode_prompt(tokenizer, prompt_messages(task, example, split, spec.few_shot))


def labeler_query(task: TaskData, example: dict) -> Query:
    return Query(example["messages"][-2]["content"], tuple(example["references"]), task.metric, task.kind,
                 task.labels)


def evaluate_model(spec: EvalModel, tasks: Sequence[TaskData], cfg: EvalConfig, seed: int,
                   baseline=None) -> tuple[dict[str, Any], list[list[Sample]]]:
    """Greedy task scores and sampled win-rate responses of one model, `cfg.win_samples` a prompt
    (KL to `baseline` if given)."""
    model, tokenizer = load_model(spec.path), load_tokenizer(spec.path)
    kwargs = decoding_args(spec, tokenizer, cfg)
    scored = first_examples(tasks, cfg.split, cfg.examples_per_task)
    prompts = [encode_for(spec, tokenizer, t, ex, cfg.split) for t, ex in scored]
    greedy = sample_many(model, tokenizer, prompts, **kwargs)
    per_task: dict[str, list[float]] = {}
    for (t, ex), (s,) in zip(scored, greedy):
        per_task.setdefault(t.name, []).append(score(t.metric, s.text, ex["references"]))
    scores = {name: mean(v) for name, v in per_task.items()}
    judged = first_examples(tasks, cfg.split, cfg.win_prompts_per_task)
    prompts = [encode_for(spec, tokenizer, t, ex, cfg.split) for t, ex in judged]
    rows = sample_many(model, tokenizer, prompts, n=cfg.win_samples, temperature=cfg.temperature, seed=seed, **kwargs)
    samples = [s for row in rows for s in row]
    held = {t.name: t.held_out for t in tasks}
    result: dict[str, Any] = {
        "name": spec.name, "path": str(spec.path), "fingerprint": fingerprint(spec.path), "few_shot": spec.few_shot,
        "prompt_format": spec.prompt_format,
        "scores": scores, "clusters": group_means(scores, {t.name: t.cluster for t in tasks}),
        "held_in_mean": mean([v for k, v in scores.items() if not held[k]]),
        "held_out_mean": mean([v for k, v in scores.items() if held[k]]),
        "response_tokens": mean([len(s.tokens) for s in samples]),
        "kl": kl_to(baseline, model, [p for p in prompts for _ in range(cfg.win_samples)], samples)
        if baseline is not None and not spec.few_shot and spec.prompt_format == "chat" else None,
        "pretrain_nll": pretrain_nll(model, cfg.lm_shards, cfg.lm_windows) if cfg.lm_shards and not spec.few_shot
        else None,
        "samples": shown_samples(judged, [row[0] for row in rows]),
    }
    return result, rows


def prompt_wins(judge: Labeler, queries: Sequence[Query], rows: Sequence[Sequence[str]],
                base_rows: Sequence[Sequence[str]]) -> list[float]:
    """Each prompt's win against the baseline: the mean of the judge's verdicts (1, ½ for a tie, 0)
    on its k-th response against the baseline's k-th."""
    return [mean([judge.prefer(q, a, b) for a, b in zip(mine, theirs)])
            for q, mine, theirs in zip(queries, rows, base_rows)]


def decoding_args(spec: EvalModel, tokenizer, cfg: EvalConfig) -> dict[str, Any]:
    return dict(pad_id=pad_id(tokenizer), stop_ids=stop_ids(tokenizer), max_new_tokens=cfg.max_new_tokens,
                batch_size=cfg.batch_size, stop_strings=TEXT_STOPS if spec.prompt_format == "text" else ())


def calibrated_judge(baseline, spec: EvalModel, judged: Sequence[tuple[TaskData, dict]], cfg: EvalConfig) -> Labeler:
    """The `heldout` labeler, its noise set for `cfg.agreement` agreement with the oracle over
    CALIBRATION_SAMPLES sampled responses of the baseline to each judged prompt: the same judge
    whichever models are judged (tasks/labeler.py)."""
    tokenizer = load_tokenizer(spec.path)
    prompts = [encode_for(spec, tokenizer, t, ex, cfg.split) for t, ex in judged]
    rows = sample_many(baseline, tokenizer, prompts, n=CALIBRATION_SAMPLES, temperature=cfg.temperature,
                       seed=cfg.seed + 2, **decoding_args(spec, tokenizer, cfg))
    groups = [(labeler_query(t, ex), [s.text for s in row]) for (t, ex), row in zip(judged, rows)]
    return Labeler(PROFILES["heldout"]).calibrate(groups, cfg.agreement)


def shown_samples(judged: Sequence[tuple[TaskData, dict]], samples: Sequence[Sample]) -> list[dict[str, str]]:
    seen: dict[str, int] = {}
    out = []
    for (t, ex), s in zip(judged, samples):
        seen[t.name] = seen.get(t.name, 0) + 1
        if seen[t.name] <= SAMPLES_SHOWN:
            out.append({"task": t.name, "prompt": ex["messages"][-2]["content"], "response": s.text})
    return out


@torch.no_grad()
def kl_to(reference, model, prompts: Sequence[Sequence[int]], samples: Sequence[Sample]) -> float | None:
    """Mean over responses of log π(y|x) − log π_ref(y|x), y sampled from π: a Monte Carlo estimate
    of KL(π ‖ π_ref) per response (exact in expectation when sampled at temperature 1)."""
    if reference.config.vocab_size != model.config.vocab_size:
        return None
    reference.eval()
    gaps = []
    for start in range(0, len(prompts), 64):  # prompt left-padded, response right-padded, as in a rollout
        chunk = samples[start:start + 64]
        prompt_ids, prompt_mask = left_pad(prompts[start:start + 64], 0)
        responses = [torch.tensor(s.tokens or (0,), dtype=torch.long) for s in chunk]
        keep = pad_sequence([torch.ones(len(s.tokens), dtype=torch.bool) for s in chunk], batch_first=True)
        ids = torch.cat([prompt_ids, pad_sequence(responses, batch_first=True)], 1)
        attention = torch.cat([prompt_mask, pad_sequence([torch.ones_like(r) for r in responses], batch_first=True)], 1)
        ref_logp, _ = action_logprobs(reference, ids, attention, ids.size(1) - prompt_ids.size(1))
        gaps += [s.logprob - float(r[:k.numel()][k].sum()) for s, r, k in zip(chunk, ref_logp, keep)]
    return mean(gaps)


@torch.no_grad()
def pretrain_nll(model, shards_dir: str, windows: int, length: int = 128) -> float | None:
    """Mean next-token NLL (nats) on the first `windows` windows of a pretraining validation shard;
    None when the model's vocabulary is not the shard's."""
    _, val, meta = load_shards(shards_dir)
    if meta.get("vocab_size", 0) > model.config.vocab_size:  # another tokenizer's shards
        return None
    ids = torch.from_numpy(val.sequential_windows(windows, length)).to(next(model.parameters()).device)
    model.eval()
    total = count = 0.0
    for start in range(0, ids.size(0), 16):
        chunk = ids[start:start + 16]
        loss, n = causal_lm_loss(model(input_ids=chunk).logits, chunk)
        total, count = total + float(loss), count + n
    return total / count


def rm_accuracy(rm_path: str, files: Sequence[str], batch_size: int, max_len: int = 512) -> dict[str, float]:
    """Per file: the fraction of untied pairs whose better completion the RM scores higher."""
    rm, tokenizer = load_score_model(rm_path), load_tokenizer(rm_path)
    out = {}
    for path in files:
        comparisons = load_comparisons(path)
        seqs = [encode_completion(tokenizer, encode_prompt(tokenizer, c.prompt), text, max_len)[0]
                for c in comparisons for text in c.completions]
        out[Path(path).stem] = pair_accuracy(comparisons, score_sequences(rm, seqs, pad_id(tokenizer), batch_size))
    return out


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate every model, write `out/<model>.json` and `out/summary.json`, return the summary."""
    if not cfg.models:
        raise UserError("eval: no models; give one or more model folders")
    names = [m.name for m in cfg.models]
    if len(set(names)) != len(names):
        raise UserError(f"eval: model names repeat ({', '.join(names)}); name them NAME=PATH")
    base_name = cfg.baseline or ("sft" if "sft" in names else names[0])
    if base_name not in names:
        raise UserError(f"eval: baseline '{base_name}' is not one of the models ({', '.join(names)})")
    tasks = load_suite(cfg)
    out = Path(cfg.out) if cfg.out else None
    base_spec = cfg.models[names.index(base_name)]
    info(f"eval: {len(cfg.models)} model(s) on {len(tasks)} tasks, baseline {base_name}")
    warn_cut_off(load_tokenizer(base_spec.path), first_examples(tasks, cfg.split, cfg.examples_per_task),
                 cfg.max_new_tokens, "eval.max_new_tokens")
    order = [base_spec] + [spec for spec in cfg.models if spec.name != base_name]
    results, samples, reference = {}, {}, None
    for spec in tqdm(order, desc="eval", unit="model", disable=None):
        seed = cfg.seed if reference is None else cfg.seed + 1  # the baseline's samples differ from the others'
        results[spec.name], samples[spec.name] = evaluate_model(spec, tasks, cfg, seed, reference)
        if reference is None:
            reference = load_model(base_spec.path)
    texts = {name: [[s.text for s in row] for row in rows] for name, rows in samples.items()}
    base_texts = texts[base_name]
    judged = first_examples(tasks, cfg.split, cfg.win_prompts_per_task)
    queries = [labeler_query(t, ex) for t, ex in judged]
    labeler = calibrated_judge(reference, base_spec, judged, cfg) if judged else Labeler(PROFILES["heldout"])
    for name in names:
        results[name]["baseline"] = base_name
        if not judged:  # win_prompts_per_task: 0
            results[name] |= {"win_rate": None, "win_interval": None, "oracle_win_rate": None}
            continue
        wins = prompt_wins(labeler, queries, texts[name], base_texts)
        oracle = prompt_wins(ORACLE, queries, texts[name], base_texts)
        results[name] |= {"win_rate": mean(wins), "win_interval": bootstrap_interval(wins, cfg.bootstrap, cfg.seed),
                          "oracle_win_rate": mean(oracle)}
    summary = {"baseline": base_name, "models": names, "prompts": len(judged), "labeler_noise": labeler.noise,
               "labeler_calibration": f"{CALIBRATION_SAMPLES} samples of {base_name} a prompt",
               "agreement": cfg.agreement, "temperature": cfg.temperature,
               "win_samples": cfg.win_samples,
               "tasks": {t.name: {"cluster": t.cluster, "held_out": t.held_out, "metric": t.metric} for t in tasks},
               "rm_accuracy": rm_accuracy(cfg.reward_model, cfg.comparisons, cfg.batch_size)
               if cfg.reward_model and cfg.comparisons else {}}
    if out:
        for name, result in results.items():  # a value that does not exist (no held-in task...) is null
            atomic_write_json(out / f"{name}.json", result, indent=1)
        atomic_write_json(out / "summary.json", summary, indent=1)
    for name in names:
        r = results[name]
        info(f"eval: {name:<20} held-in {fmt(r['held_in_mean'])}  held-out {fmt(r['held_out_mean'])}  "
             f"win rate {win_text(r)}")
    return {"summary": summary, "results": results}
