"""Stage `ppo`: PPO against the reward model with a per-token KL penalty to the SFT model
(InstructGPT §3.5); PPO-ptx when `ptx_coef` > 0. The value model starts from the RM; an EMA of
the policy weights is the saved model."""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch

from instructgpt.config import PPOConfig, UserError, dump_config, require
from instructgpt.data.lm import LMBatch, step_rng
from instructgpt.data.preference import encode_prompt
from instructgpt.data.records import iter_jsonl, require_fields
from instructgpt.data.shards import TokenShard, build_shards
from instructgpt.models.build import check_tokenizer, count_parameters, load_model, pad_id
from instructgpt.models.parts import action_logprobs, lm_parts
from instructgpt.models.reward import load_score_model
from instructgpt.objectives.lm import causal_lm_loss
from instructgpt.objectives.ppo import (AdaptiveKLController, FixedKLController, explained_variance, policy_loss,
                                        value_loss, variance_sums)
from instructgpt.stages.judge import compare_with_start, fresh_split, load_tasks_dir, save_output, task_prompts
from instructgpt.stages.rollout import Rollout, action_values, make_rollout
from instructgpt.tokenizer.chat import stop_ids
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.utils import dist
from instructgpt.utils.io import require_writable
from instructgpt.utils.logging import MetricsLogger, info


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at optimizer step `step` (1-based), warmed up as (1 + t) / (10 + t) so a short run's
    average follows the policy instead of staying mostly the start model (decay^t of it)."""
    return min(decay, (1 + step) / (10 + step))


class ActorCritic(torch.nn.Module):
    """What PPO trains and checkpoints together: policy, value model, the policy's EMA, and the
    state that must survive a resume (β, running reward moments)."""

    def __init__(self, policy, value, ema_decay: float, beta: float):
        super().__init__()
        self.policy, self.value = policy, value
        self.ema = copy.deepcopy(policy).requires_grad_(False) if ema_decay > 0 else None
        self.register_buffer("beta", torch.tensor(float(beta), dtype=torch.float64))
        self.register_buffer("moments", torch.zeros(3, dtype=torch.float64))  # count, mean, M2 of RM scores

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for e, p in zip(self.ema.parameters(), self.policy.parameters()):
            e.lerp_(p.detach(), 1 - decay)

    @torch.no_grad()
    def normalize(self, scores: torch.Tensor) -> torch.Tensor:
        """Whiten scores with running moments (Welford / Chan), updated with this batch first."""
        n, mean, m2 = self.moments.tolist()
        b = scores.double()
        bn, bmean = b.numel(), float(b.mean())
        delta, total = bmean - mean, n + bn
        m2 += float(((b - bmean) ** 2).sum()) + delta ** 2 * n * bn / total
        mean += delta * bn / total
        self.moments.copy_(torch.tensor([total, mean, m2], dtype=torch.float64))
        std = (m2 / max(total - 1, 1)) ** 0.5
        return ((b - mean) / max(std, 1e-6)).to(scores.dtype)


class PPOBatch:
    """One micro-batch of a PPO update: rollout rows, plus pretraining rows for PPO-ptx."""

    weights = None  # fit divides the summed loss by num_loss_tokens: the step's response tokens

    def __init__(self, rollout: Rollout, ptx: LMBatch | None, ptx_scale: float):
        self.rollout, self.ptx, self.ptx_scale = rollout, ptx, ptx_scale

    @property
    def num_loss_tokens(self) -> int:
        return int(self.rollout.action_mask.sum())

    def to(self, device: torch.device) -> "PPOBatch":
        return PPOBatch(self.rollout.to(device), self.ptx.to(device) if self.ptx else None, self.ptx_scale)


def run(cfg: PPOConfig, resume: bool = False) -> Path:
    require(cfg, "out", "reward_model")
    require(cfg.model, "path")
    if cfg.train.distributed.strategy == "fsdp" and dist.launched():
        raise UserError("ppo: train.distributed.strategy=fsdp is not supported (the frozen reference, the reward "
                        "model and the EMA would each need sharding); use ddp")
    dist.setup(cfg.train.distributed)
    world, rank = dist.world_size(), dist.rank()
    if cfg.minibatches > cfg.rollout_batch:
        raise UserError(f"ppo: minibatches ({cfg.minibatches}) is more than rollout_batch ({cfg.rollout_batch}); "
                        f"a minibatch needs at least one response: lower minibatches or raise rollout_batch")
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model.path)
    prompts, tasks = _load_prompts(cfg, tokenizer)
    policy, ref = load_model(cfg.model.path), load_model(cfg.model.path).requires_grad_(False)
    reward_model = load_score_model(cfg.reward_model).requires_grad_(False)
    check_tokenizer(policy, tokenizer, "ppo")
    check_tokenizer(reward_model, tokenizer, "ppo")
    model = ActorCritic(policy, load_score_model(cfg.reward_model), cfg.ema_decay, cfg.beta)
    with dist.main_first():  # rank 0 tokenizes the pretraining corpus; the others read its shards
        ptx_shard = _ptx_shard(cfg, tokenizer, out) if cfg.ptx_coef > 0 else None
    kl_ctl = AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl \
        else FixedKLController(cfg.beta)
    updates = cfg.ppo_epochs * cfg.minibatches
    train = cfg.train
    if train.save_every % updates:  # a checkpoint between rollouts: a resumed run regenerates the same one
        every = -(-train.save_every // updates) * updates
        info(f"ppo: train.save_every {train.save_every} -> {every}, a multiple of the {updates} updates of a rollout, "
             f"so that a resumed run continues with the same rollout")
        train = train.model_copy(update={"save_every": every})
    info(f"ppo: {len(prompts):,} prompts, {cfg.rollout_batch * world} per rollout, {updates} update(s) per rollout; "
         f"policy {count_parameters(policy) / 1e6:.1f}M parameters; β={cfg.beta}"
         + (f"; ptx γ={cfg.ptx_coef}, {cfg.ptx_ratio} pretraining sequences per response" if ptx_shard is not None
            else ""))
    pad, stops = pad_id(tokenizer), stop_ids(tokenizer)
    R = cfg.rollout_batch  # prompts per rollout and process
    state: dict = {"rollout": None, "index": -1, "stats": {}, "t_gen": 0.0, "t_ready": 0.0}

    def batches(step: int) -> list[PPOBatch]:
        index, update = divmod(step, updates)
        if state["index"] != index:
            device = next(model.parameters()).device
            kl_ctl.value = float(model.beta)
            started = time.perf_counter()
            # rank r rolls out positions r·R .. r·R + R - 1 of the rollout's R·world prompts; each
            # response is sampled with a generator seeded by (seed, rollout, position) alone
            positions = range(index * R * world + rank * R, index * R * world + (rank + 1) * R)
            chosen = [prompts[g % len(prompts)] for g in positions]
            generators = [torch.Generator(device=device).manual_seed(cfg.train.seed * 1_000_003 + g) for g in positions]
            state["rollout"], state["stats"] = make_rollout(
                model.policy, ref.to(device), model.value, reward_model.to(device), chosen, pad_id=pad,
                stop_ids=stops, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, beta=kl_ctl.value,
                gamma=cfg.gamma, lam=cfg.lam, no_eos_penalty=cfg.no_eos_penalty, row_generators=generators,
                normalize=normalize if cfg.normalize_reward else None)
            state["index"], state["t_gen"] = index, time.perf_counter() - started
        epoch, mb = divmod(update, cfg.minibatches)  # each rank's minibatch: a share of its own rows
        order = torch.randperm(R, generator=torch.Generator().manual_seed(index * 7919 + epoch))
        rows = order[mb::cfg.minibatches]
        micro = _micro_batches(state["rollout"], rows, cfg, ptx_shard, step)
        state["t_ready"] = time.perf_counter()
        return micro

    def normalize(scores: torch.Tensor) -> torch.Tensor:
        """Whiten this rank's scores with running moments updated by every rank's scores."""
        everyone = dist.all_gather_cat(scores)
        return model.normalize(everyone)[rank * R:(rank + 1) * R]

    def ppo_step(model: ActorCritic, batch: PPOBatch) -> tuple[torch.Tensor, int, dict[str, float]]:
        r = batch.rollout
        A = r.action_mask.size(1)
        logprobs, _ = action_logprobs(model.policy, r.sequences, r.attention_mask, A)
        values = action_values(model.value, r.sequences, r.attention_mask, A)
        pg, pg_stats = policy_loss(logprobs, r.logprobs, r.advantages, r.action_mask, cfg.clip)
        vf, vf_stats = value_loss(values, r.values, r.returns, r.action_mask, cfg.value_clip)
        loss = pg + cfg.vf_coef * vf
        sums = {"pg": float(pg.detach()), "vf": float(vf.detach()), "clipped": float(pg_stats["clipped"]),
                "vf_clipped": float(vf_stats["clipped"]), "approx_kl": float(pg_stats["approx_kl"]),
                "tokens": float(pg_stats["tokens"]), **variance_sums(values, r.returns, r.action_mask)}
        if batch.ptx is not None:
            decoder, head = lm_parts(model.policy)
            hidden = decoder(input_ids=batch.ptx.input_ids).last_hidden_state
            nll, n = causal_lm_loss(head(hidden), batch.ptx.labels)
            loss = loss + batch.ptx_scale * nll
            sums |= {"ptx": float(nll.detach()), "ptx_tokens": n}
        return loss, r.sequences.numel(), sums

    def after_step(step: int, sums: dict[str, float]) -> dict[str, float]:
        started = time.perf_counter()
        learn_s = started - state["t_ready"]
        if model.ema is not None:
            model.update_ema(ema_decay(cfg.ema_decay, step))
        stats = dict(state["stats"])
        if step % updates == 0:  # the rollout is used up: adapt β to its KL
            kl_ctl.update(stats["ppo/kl"], R * world)
            model.beta.fill_(kl_ctl.value)
        t = max(sums["tokens"], 1.0)
        stats.update({"ppo/policy_loss": sums["pg"] / t, "ppo/value_loss": sums["vf"] / t,
                      "ppo/clip_fraction": sums["clipped"] / t, "ppo/value_clip_fraction": sums["vf_clipped"] / t,
                      "ppo/approx_kl": sums["approx_kl"] / t,
                      "ppo/explained_variance": explained_variance(sums),
                      "ppo/time_generate_s": state["t_gen"], "ppo/time_learn_s": learn_s,
                      "ppo/time_other_s": time.perf_counter() - started})
        if "ptx" in sums:
            stats["ppo/ptx_loss"] = sums["ptx"] / max(sums["ptx_tokens"], 1)
        state["t_gen"] = 0.0
        return stats

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        result = fit(model, ppo_step, batches, train, cfg.optim, out, logger, resume=resume, desc=out.name,
                     after_step=after_step)
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 judges and saves
        return out
    model = result.model
    final = model.ema if model.ema is not None else model.policy
    report = compare_with_start(final.eval(), ref.eval(), reward_model, tokenizer, tasks, cfg.judge) if tasks else {}
    save_output(out, final, tokenizer, dump_config(cfg), report, result.step)
    return out


def _micro_batches(rollout: Rollout, rows: torch.Tensor, cfg: PPOConfig, ptx_shard: TokenShard | None,
                   step: int) -> list[PPOBatch]:
    """The minibatch's rows in micro-batches of train.batch_size; with PPO-ptx each carries
    pretraining windows, weighted so the step's loss gains γ × their mean token NLL."""
    size = cfg.train.batch_size
    chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
    first = dist.rank() * len(chunks)  # ranks draw different pretraining windows
    ptx = [_ptx_batch(ptx_shard, max(1, round(cfg.ptx_ratio * len(c))), cfg.ptx_seq_len, step, first + i,
                      cfg.train.seed) for i, c in enumerate(chunks)] if ptx_shard is not None else [None] * len(chunks)
    response_tokens, ptx_total = dist.all_reduce_sum(
        [rollout.action_mask[rows].sum(), sum(b.num_loss_tokens for b in ptx if b is not None)])
    scale = cfg.ptx_coef * response_tokens / ptx_total if ptx_total else 0.0
    return [PPOBatch(rollout.rows(c), p, scale) for c, p in zip(chunks, ptx)]


def _ptx_batch(shard: TokenShard, rows: int, seq_len: int, step: int, micro: int, seed: int) -> LMBatch:
    ids = torch.from_numpy(shard.random_windows(step_rng(seed, step, micro), rows, seq_len))
    return LMBatch(ids, ids.clone())


def _ptx_shard(cfg: PPOConfig, tokenizer, out: Path) -> TokenShard:
    """The pretraining corpus as token shards (tokenized once, beside the checkpoints)."""
    if not cfg.ptx_corpus:
        raise UserError("ppo: ptx_coef > 0 needs ptx_corpus (the pretraining .txt / .jsonl files)")
    shard, _, _ = build_shards(cfg.ptx_corpus, tokenizer, cfg.tokenizer or cfg.model.path, out / "ptx_shards",
                               val_fraction=cfg.ptx_val_fraction, progress=cfg.train.progress)
    return shard


def _load_prompts(cfg: PPOConfig, tokenizer) -> tuple[list[list[int]], list]:
    """Prompt ids, shuffled once by seed: held-in tasks' rl prompts (else train), then `prompts` files."""
    tasks = load_tasks_dir(cfg.tasks_dir) if cfg.tasks_dir else []
    messages = [p.messages for p in task_prompts(tasks, fresh_split(tasks), 10 ** 9)]
    for path in cfg.prompts:
        for lineno, record in iter_jsonl(path):
            require_fields(record, ["prompt"], f"{path}:{lineno}")
            messages.append(({"role": "user", "content": record["prompt"]},))
    if not messages:
        raise UserError("ppo: no prompts; set tasks_dir or prompts")
    random.Random(cfg.train.seed).shuffle(messages)
    return [encode_prompt(tokenizer, m) for m in messages], tasks
