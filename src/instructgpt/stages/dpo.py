"""Stage `dpo`: DPO (or IPO) from the SFT model on comparisons. The reference is the frozen
start model, whose log-probabilities of every pair are computed once, up front."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from instructgpt.config import DPOConfig, UserError, dump_config, require
from instructgpt.data.comparisons import load_comparisons
from instructgpt.data.packing import SFTBatch, pad_batch, unpad_batch
from instructgpt.data.prefix import TreeBatch, pair_trees
from instructgpt.data.preference import encode_completion, encode_prompt, step_keys
from instructgpt.models.build import check_tokenizer, count_parameters, load_model, pad_id
from instructgpt.models.parts import lm_parts
from instructgpt.objectives.dpo import PREFERENCE_LOSSES
from instructgpt.objectives.sft import example_losses_at
from instructgpt.stages.judge import compare_with_start, load_tasks_dir, save_output
from instructgpt.stages.sft import answer_nll
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.utils import dist
from instructgpt.utils.io import require_writable
from instructgpt.utils.logging import MetricsLogger, info

Encoded = tuple[list[int], list[bool]]


@dataclass
class PairBatch:
    """P pairs: rows 0..P-1 are the chosen completions, rows P..2P-1 the rejected ones."""

    sequences: SFTBatch | TreeBatch  # the 2P sequences (sequences_batch)
    ref_logprobs: torch.Tensor  # (2P,) summed completion log-probs under the reference
    weights: None = None        # fit divides the summed loss by num_loss_tokens (here: pairs)

    @property
    def num_loss_tokens(self) -> int:
        return self.ref_logprobs.numel() // 2

    def to(self, device: torch.device) -> "PairBatch":
        return PairBatch(self.sequences.to(device), self.ref_logprobs.to(device))


def run(cfg: DPOConfig, resume: bool = False) -> Path:
    require(cfg, "out", "data")
    require(cfg.model, "path")
    dist.setup(cfg.train.distributed)
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model.path)
    pairs = load_pairs(cfg, tokenizer)
    model = load_model(cfg.model.path)
    check_tokenizer(model, tokenizer, "dpo")
    pad = pad_id(tokenizer)
    info(f"dpo: {len(pairs):,} pairs ({cfg.pairs} pairs of each comparison), loss {cfg.loss}, β={cfg.beta}; "
         f"{count_parameters(model) / 1e6:.1f}M parameters; reference log-probs computed once")
    ref_logprobs = reference_logprobs(model, pairs, pad, layout=cfg.layout)
    loss_fn = PREFERENCE_LOSSES[cfg.loss]
    t = cfg.train

    def batches(step: int) -> list[PairBatch]:
        """This rank's micro-batches of the step's pairs (batch_size x grad_accum x world of them)."""
        keys = step_keys(len(pairs), t.batch_size * t.grad_accum * dist.world_size(), step, t.seed)
        return [pair_batch([pairs[k] for k in keys[s]], ref_logprobs[keys[s]], pad, cfg.layout)
                for s in dist.local_slices(len(keys), t.batch_size)]

    dpo_step = make_dpo_step(loss_fn, cfg.beta)

    def after_step(step: int, sums: dict[str, float]) -> dict[str, float]:
        return {f"dpo/{k}": v / max(sums["pairs"], 1.0) for k, v in sums.items() if k != "pairs"}

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        result = fit(model, dpo_step, batches, t, cfg.optim, out, logger, resume=resume, desc=out.name,
                     after_step=after_step)
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 judges and saves
        return out
    model = result.model
    report = {}
    if cfg.tasks_dir:
        start = load_model(cfg.model.path).to(next(model.parameters()).device)
        rm = None
        if cfg.reward_model:
            from instructgpt.models.reward import load_score_model
            rm = load_score_model(cfg.reward_model).to(start.device)
        report = compare_with_start(model.eval(), start.eval(), rm, tokenizer, load_tasks_dir(cfg.tasks_dir),
                                    cfg.judge)
    save_output(out, model, tokenizer, dump_config(cfg), report, result.step)
    return out


def make_dpo_step(loss_fn, beta: float):
    """The step function of `fit`: the preference loss summed over the micro-batch's pairs, and its statistics."""

    def dpo_step(model: torch.nn.Module, batch: PairBatch) -> tuple[torch.Tensor, int, dict[str, float]]:
        logprobs = sequence_logprobs(model, batch.sequences)                         # (2P,)
        P = batch.num_loss_tokens
        loss, metrics = loss_fn(logprobs[:P], logprobs[P:], batch.ref_logprobs[:P], batch.ref_logprobs[P:], beta)
        sums = {"margin": float(metrics["margin"]) * P, "accuracy": float(metrics["accuracy"]) * P,
                "chosen_logprob": float(logprobs[:P].detach().sum()),
                "rejected_logprob": float(logprobs[P:].detach().sum()), "pairs": P}
        return loss, batch.sequences.input_ids.numel(), sums

    return dpo_step


def load_pairs(cfg: DPOConfig, tokenizer) -> list[tuple[Encoded, Encoded]]:
    """(chosen, rejected) encodings of every pair the scheme takes from the comparisons."""
    out = []
    for source in cfg.data:
        for c in load_comparisons(source.path, source.limit, source.skip_invalid):
            prompt = encode_prompt(tokenizer, c.prompt)
            encoded = [encode_completion(tokenizer, prompt, text, cfg.max_len) for text in c.completions]
            out += [(encoded[w], encoded[l]) for w, l in c.pairs(cfg.pairs)]
    if not out:
        raise UserError("dpo: the comparisons hold no untied pair (key data)")
    return out


def sequences_batch(pairs: list[tuple[Encoded, Encoded]], pad: int, layout: str = "shared_prompt"
                    ) -> SFTBatch | TreeBatch:
    """Examples 0..P-1 the chosen completions, P..2P-1 the rejected ones, laid out as `layout` says:
    shared_prompt = each pair's prompt once, both answers branching from it (data/prefix.py);
    unpadded = whole sequences, several a row (data.packing.unpad_batch); padded = one a row."""
    if layout == "shared_prompt":
        return pair_trees(pairs, pad)
    rows = [c for c, _ in pairs] + [r for _, r in pairs]
    return (unpad_batch if layout == "unpadded" else pad_batch)(rows, pad)


def pair_batch(pairs: list[tuple[Encoded, Encoded]], ref: torch.Tensor, pad: int, layout: str = "shared_prompt"
               ) -> PairBatch:
    return PairBatch(sequences_batch(pairs, pad, layout), torch.cat([ref[:, 0], ref[:, 1]]))


def sequence_logprobs(model: torch.nn.Module, batch: SFTBatch | TreeBatch) -> torch.Tensor:
    """(N,) Σ_t log p(completion token t) of each of the batch's N examples."""
    if isinstance(batch, TreeBatch):
        decoder, head = lm_parts(model)
        hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=batch.position_ids).last_hidden_state            # (B, T, H)
        logits = head(hidden.reshape(-1, hidden.size(-1))[batch.predictor])           # (K, V)
        return -example_losses_at(logits, batch.targets, batch.owners, batch.num_examples)[0]
    return -answer_nll(model, batch, int(batch.example_index.max()) + 1)


@torch.no_grad()
def reference_logprobs(model: torch.nn.Module, pairs: list[tuple[Encoded, Encoded]], pad: int,
                       batch_size: int = 64, layout: str = "shared_prompt") -> torch.Tensor:
    """(num_pairs, 2) the start model's summed log-probs of (chosen, rejected), before any update.
    Under torchrun each rank scores a contiguous share of the pairs and the shares are gathered."""
    was_training = model.training
    model.eval()
    share = -(-len(pairs) // dist.world_size())
    mine = pairs[dist.rank() * share:(dist.rank() + 1) * share]
    out = [torch.zeros(0, 2)]
    for i in range(0, len(mine), batch_size):
        chunk = mine[i:i + batch_size]
        logprobs = sequence_logprobs(model, sequences_batch(chunk, pad, layout)).float().cpu()
        out.append(torch.stack([logprobs[:len(chunk)], logprobs[len(chunk):]], 1))
    model.train(was_training)
    scores = torch.cat(out)
    if not dist.active():
        return scores
    padded = torch.cat([scores, torch.zeros(share - len(scores), 2)])  # the last share may be short
    return dist.all_gather_cat(padded)[:len(pairs)]
