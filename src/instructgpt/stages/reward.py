"""Stage `reward`: the SFT model with a scalar head, trained on K-way rankings (InstructGPT eq. 1:
all C(K,2) pairs of a prompt in one batch element, one forward per completion) and pairs."""
from __future__ import annotations

from pathlib import Path

import torch

from instructgpt.config import RewardConfig, UserError, dump_config, require
from instructgpt.config.schema import PreferenceData
from instructgpt.data.comparisons import Comparison, load_comparisons, pair_accuracy
from instructgpt.data.preference import RewardBatch, reward_batch, step_keys
from instructgpt.models.build import check_tokenizer, count_parameters, pad_id
from instructgpt.models.reward import batch_rewards, load_score_model
from instructgpt.objectives.reward import ranking_loss
from instructgpt.stages.judge import reward_of, save_output
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.utils import dist
from instructgpt.utils.io import require_writable
from instructgpt.utils.logging import MetricsLogger, info


def run(cfg: RewardConfig, resume: bool = False) -> Path:
    require(cfg, "out", "data")
    require(cfg.model, "path")
    dist.setup(cfg.train.distributed)
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model.path)
    train, evals = load_sets(cfg.data, cfg.eval_data)
    model = load_score_model(cfg.model.path, new_head=True)
    check_tokenizer(model, tokenizer, "reward")
    k = sum(len(c.completions) for c in train)
    info(f"reward: {len(train):,} training comparisons ({k:,} completions, "
         f"{sum(sum(1 for _ in c.pairs()) for c in train):,} pairs); eval sets: {', '.join(evals) or 'none'}; "
         f"{count_parameters(model) / 1e6:.1f}M parameters")
    pad = pad_id(tokenizer)
    t = cfg.train
    per_step = t.batch_size * t.grad_accum * dist.world_size()  # comparisons a step, all ranks

    def batches(step: int) -> list[RewardBatch]:
        """This rank's micro-batches of the step's comparisons."""
        keys = step_keys(len(train), per_step, step, t.seed)
        return [reward_batch([train[i] for i in keys[s]], tokenizer, cfg.max_len, pad, s.start, cfg.layout)
                for s in dist.local_slices(len(keys), t.batch_size)]

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        return {f"rm/accuracy/{name}": accuracy(model, tokenizer, data, cfg.max_len) for name, data in evals.items()}

    def after_step(step: int, sums: dict[str, float]) -> dict[str, float]:
        return {"rm/train_accuracy": sums["right"] / max(sums["pairs"], 1.0)}

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        result = fit(model, reward_step, batches, t, cfg.optim, out, logger, evaluate=evaluate if evals else None,
                     resume=resume, desc="reward", after_step=after_step)
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 centres and saves
        return out
    model = result.model.eval()
    if cfg.demonstrations:
        model.config.reward_bias = -_demonstration_mean(model, tokenizer, train, cfg.max_len)
        info(f"reward: bias {model.config.reward_bias:+.4f} puts the demonstrations' mean score at 0")
    save_output(out, model, tokenizer, dump_config(cfg), {**result.last_eval, "reward_bias": model.config.reward_bias},
                result.step)
    return out


def reward_step(model: torch.nn.Module, batch: RewardBatch) -> tuple[torch.Tensor, int, dict[str, float]]:
    """The ranking loss summed over the micro-batch's prompts (fit divides by the step's prompts),
    and the pairs it ordered right."""
    s = batch.sequences
    rewards = batch_rewards(model, s)                                               # (N,)
    loss, metrics = ranking_loss(rewards, batch.group_ids, batch.ranks)
    pairs = float(metrics["pairs"])
    return (loss * metrics["groups"].to(loss.device), s.input_ids.numel(),
            {"right": float(metrics["accuracy"]) * pairs, "pairs": pairs})


def load_sets(train: list[PreferenceData], evals: list[PreferenceData]
              ) -> tuple[list[Comparison], dict[str, list[Comparison]]]:
    """Training comparisons, and named eval sets (a `split` source contributes its tail to both)."""
    records: list[Comparison] = []
    named: dict[str, list[Comparison]] = {}
    for source in train:
        found = load_comparisons(source.path, source.limit, source.skip_invalid)
        if source.split:
            cut = int(len(found) * source.split)
            found, named[f"{_name(source.path)}-last{round((1 - source.split) * 100)}pct"] = found[:cut], found[cut:]
        records += found
    for source in evals:
        named[_name(source.path)] = load_comparisons(source.path, source.limit, source.skip_invalid)
    if not records:
        raise UserError("reward: no training comparisons (key data)")
    return records, named


def _name(path: str) -> str:
    return Path(path).name.split(".")[0]


def accuracy(model: torch.nn.Module, tokenizer, comparisons: list[Comparison], max_len: int) -> float:
    """Fraction of untied pairs whose better completion the RM scores higher."""
    rewards = reward_of(model, tokenizer, [c.prompt for c in comparisons for _ in c.completions],
                        [text for c in comparisons for text in c.completions], max_len)
    return pair_accuracy(comparisons, rewards)


def _demonstration_mean(model, tokenizer, comparisons: list[Comparison], max_len: int) -> float:
    """Mean score of each prompt's reference answer (else its best completion), bias excluded."""
    model.config.reward_bias = 0.0
    answers = [c.reference or c.completions[c.ranks.index(min(c.ranks))] for c in comparisons]
    return sum(reward_of(model, tokenizer, [c.prompt for c in comparisons], answers, max_len)) / len(comparisons)
