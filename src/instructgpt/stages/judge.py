"""What the RL stages share: prompts of held-in tasks with their labeler queries, sampling
responses, and judging a trained policy against its start model (RM reward, the held-out
labeler's win rate with ties counting ½, and held-in task scores)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from instructgpt.checkpoint import mark_complete, save_hf_folder
from instructgpt.config import SFTConfig
from instructgpt.data.sft import TaskData, load_task_data
from instructgpt.data.preference import encode_completion, encode_prompt
from instructgpt.generation import sample_many
from instructgpt.models.build import pad_id
from instructgpt.models.reward import score_sequences
from instructgpt.stages.sft_eval import score_tasks, summarize
from instructgpt.tasks.labeler import CALIBRATION_SAMPLES, ORACLE, PROFILES, Labeler, Query
from instructgpt.tokenizer.chat import stop_ids
from instructgpt.utils.io import atomic_write_json
from instructgpt.utils.logging import info


@dataclass(frozen=True)
class Prompt:
    """A prompt of a task: its chat messages, and what a labeler needs to judge its answers."""

    messages: tuple[dict[str, str], ...]
    task: str
    query: Query


def load_tasks_dir(path: str) -> list[TaskData]:
    """The tasks of a run's tasks/ folder (written by the tasks stage)."""
    return load_task_data(SFTConfig(tasks_dir=path))


def fresh_split(tasks: Sequence[TaskData]) -> str:
    """Where RL prompts come from: the rl split (prompts SFT never saw), else train for older runs."""
    return "rl" if any(t.splits["rl"] for t in tasks if not t.held_out) else "train"


def task_prompts(tasks: Sequence[TaskData], split: str, per_task: int) -> list[Prompt]:
    """The first `per_task` examples of `split` of every held-in task, as prompts."""
    out = []
    for t in tasks:
        if t.held_out:
            continue
        for ex in t.splits[split][:per_task]:
            messages = tuple(ex["messages"][:-1])
            query = Query(messages[-1]["content"], tuple(ex["references"]), t.metric, t.kind, t.labels)
            out.append(Prompt(messages, t.name, query))
    return out


def sample_texts(model, tokenizer, prompts: Sequence[Sequence[dict[str, str]]], n: int, *, temperature: float,
                 max_new_tokens: int, batch_size: int, seed: int, top_p: float = 1.0) -> list[list[str]]:
    """`n` responses to each prompt (temperature 0 = greedy), deterministic in `seed`."""
    samples = sample_many(model, tokenizer, [encode_prompt(tokenizer, p) for p in prompts], n=n,
                          pad_id=pad_id(tokenizer), stop_ids=stop_ids(tokenizer), max_new_tokens=max_new_tokens,
                          batch_size=batch_size, temperature=temperature, top_p=top_p, seed=seed)
    return [[s.text for s in row] for row in samples]


def reward_of(rm, tokenizer, prompts: Sequence[Sequence[dict[str, str]]], responses: Sequence[str],
              max_len: int = 512, batch_size: int = 64) -> list[float]:
    """The RM's score of each (prompt, response), encoded as a rollout is."""
    encoded = [encode_completion(tokenizer, encode_prompt(tokenizer, p), r, max_len)[0]
               for p, r in zip(prompts, responses)]
    return score_sequences(rm, encoded, pad_id(tokenizer), batch_size)


def compare_with_start(policy, start, rm, tokenizer, tasks: Sequence[TaskData], judge, batch_size: int = 64,
                       ) -> dict[str, float]:
    """The policy against its start model on the same test prompts, answered the same way.

    Returns `reward` / `start_reward` (mean RM score), `win_rate` (the `heldout` labeler, noise
    set for 0.75 agreement with the oracle on the start model's samples; ties ½), `oracle_win_rate` (noiseless),
    and the greedy held-in task scores `task_score` / `start_task_score` (their difference is the
    alignment tax).
    """
    prompts = task_prompts(tasks, "test", judge.prompts_per_task)
    if not prompts:
        return {}
    messages = [p.messages for p in prompts]
    kwargs = dict(temperature=judge.temperature, max_new_tokens=judge.max_new_tokens, batch_size=batch_size,
                  seed=judge.seed)
    mine = [r[0] for r in sample_texts(policy, tokenizer, messages, 1, **kwargs)]
    theirs = [r[0] for r in sample_texts(start, tokenizer, messages, 1, **kwargs)]
    pairs = [(p.query, [a, b]) for p, a, b in zip(prompts, mine, theirs)]
    # the judge's noise is set on other samples of the start model, not on the pairs it judges (tasks/labeler.py)
    calibration = sample_texts(start, tokenizer, messages, CALIBRATION_SAMPLES, **(kwargs | {"seed": judge.seed + 1}))
    labeler = Labeler(PROFILES["heldout"]).calibrate([(p.query, r) for p, r in zip(prompts, calibration)], 0.75)
    out = {} if rm is None else {"reward": _mean(reward_of(rm, tokenizer, messages, mine)),
                                 "start_reward": _mean(reward_of(rm, tokenizer, messages, theirs))}
    out |= {"win_rate": _mean([labeler.prefer(q, a, b) for q, (a, b) in pairs]),
           "oracle_win_rate": _mean([ORACLE.prefer(q, a, b) for q, (a, b) in pairs]),
           "identical": _mean([float(a.strip() == b.strip()) for a, b in zip(mine, theirs)]),
           "prompts": float(len(prompts))}
    for name, model in (("task_score", policy), ("start_task_score", start)):
        scores = score_tasks(model, tokenizer, [t for t in tasks if not t.held_out], "test", None,
                             judge.max_new_tokens, batch_size)
        out[name] = summarize(scores, tasks)["held_in_mean"]
    return out


def save_output(out: Path, model, tokenizer, run_yaml: str, report: dict[str, float], step: int) -> None:
    """A trained RM or policy as an HF folder with its report in scores.json, sealed complete."""
    save_hf_folder(out, model.cpu(), tokenizer, run_yaml)
    atomic_write_json(out / "scores.json", report, indent=1)
    if report:
        info(f"{out.name}: " + ", ".join(f"{k}={v:.4f}" for k, v in report.items()))
    mark_complete(out, step=step, **report)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
