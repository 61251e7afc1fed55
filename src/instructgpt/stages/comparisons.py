"""Stage `comparisons`: K responses per prompt sampled from the SFT model, ranked by the labelers.

Writes `<out>` (prompts of the held-in tasks' rl split, which SFT never saw, ranked by the
`train` labeler),
`<stem>-heldout.jsonl` (val-split prompts ranked by the `heldout` labeler) and
`<stem>-oracle.jsonl` (the same val-split responses ranked by the noiseless oracle, ties kept
as equal scores), plus `<stem>.json` with each labeler's measured agreement with the oracle.
"""
from __future__ import annotations

import json
from pathlib import Path

from instructgpt.config import ComparisonsConfig, UserError, require
from instructgpt.models.build import check_tokenizer, load_model
from instructgpt.stages.judge import Prompt, fresh_split, load_tasks_dir, sample_texts, task_prompts
from instructgpt.tasks.labeler import ORACLE, PROFILES, Labeler, agreement_with_oracle
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.utils.io import atomic_write_json, atomic_write_text
from instructgpt.utils.logging import info
from instructgpt.utils.seed import set_seed


def run(cfg: ComparisonsConfig) -> Path:
    require(cfg, "out", "tasks_dir")
    require(cfg.model, "path")
    out = Path(cfg.out)
    tasks = load_tasks_dir(cfg.tasks_dir)
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model.path)
    model = load_model(cfg.model.path)
    check_tokenizer(model, tokenizer, "comparisons")
    set_seed(cfg.seed)
    stats = {}
    fresh = fresh_split(tasks)
    if fresh == "train":
        info("comparisons: the tasks have no rl split (tasks.n_rl = 0): sampling on train prompts, which the "
             "SFT model has learnt by heart")
    sets = (("train", fresh, cfg.prompts_per_task, "train"),
            ("heldout", "val", cfg.heldout_prompts_per_task, "heldout"))
    for offset, (name, split, per_task, profile) in enumerate(sets):
        prompts = task_prompts(tasks, split, per_task)
        if not prompts:
            continue
        info(f"comparisons: sampling {cfg.k} responses to {len(prompts)} {split} prompts "
             f"(T={cfg.temperature}) for the {profile} labeler")
        groups = _distinct(prompts, sample_texts(
            model, tokenizer, [p.messages for p in prompts], cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed + offset))
        if not groups:
            raise UserError(f"comparisons: every prompt got {cfg.k} identical responses; raise temperature")
        labeler = Labeler(PROFILES[profile]).calibrate([(p.query, r) for p, r in groups], cfg.agreement)
        path = out if name == "train" else out.with_name(f"{out.stem}-heldout.jsonl")
        _write(path, groups, labeler)
        if name == "heldout":
            _write(out.with_name(f"{out.stem}-oracle.jsonl"), groups, ORACLE)
        agreement = agreement_with_oracle(labeler, [(p.query, r) for p, r in groups])
        stats[name] = {"prompts": len(groups), "skipped_identical": len(prompts) - len(groups),
                       "responses": sum(len(r) for _, r in groups), "labeler": profile,
                       "noise": labeler.noise, "agreement_with_oracle": agreement}
        info(f"comparisons: {len(groups)} prompts ({len(prompts) - len(groups)} skipped: all responses identical), "
             f"{profile} labeler agrees with the oracle on {agreement:.3f} of pairs -> {path}")
    atomic_write_json(out.with_suffix(".json"), stats)
    return out


def _distinct(prompts: list[Prompt], samples: list[list[str]]) -> list[tuple[Prompt, list[str]]]:
    """Each prompt's distinct non-empty responses; prompts left with fewer than 2 are dropped
    (identical responses make a pair that teaches nothing)."""
    out = []
    for prompt, responses in zip(prompts, samples):
        distinct = list(dict.fromkeys(r.strip() for r in responses if r.strip()))
        if len(distinct) >= 2:
            out.append((prompt, distinct))
    return out


def _write(path: Path, groups: list[tuple[Prompt, list[str]]], labeler: Labeler) -> None:
    lines = []
    for prompt, responses in groups:
        utilities = labeler.utilities(prompt.query, responses)
        ranking = labeler.rank(prompt.query, responses)
        messages = list(prompt.messages)
        lines.append(json.dumps({"prompt": messages[0]["content"] if len(messages) == 1 else messages,
                                 "completions": responses, "ranking": ranking,
                                 "scores": [round(u, 6) for u in utilities], "task": prompt.task,
                                 "reference": prompt.query.references[0]}, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
