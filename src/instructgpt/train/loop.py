"""`fit()`: the one training loop every stage composes (accumulation, clipping, autocast,
eval / log / save cadence, resume). It knows nothing of the model or the loss."""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Protocol

import torch

from instructgpt.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from instructgpt.config.errors import UserError
from instructgpt.config.schema import OptimConfig, TrainConfig
from instructgpt.train.attention import resolve_attention, use_attention, without_kv_cache
from instructgpt.train.flops import measure_peak_flops, mfu, resolve_precision
from instructgpt.train.optim import build_optimizer, build_scheduler
from instructgpt.train.parallel import Parallel
from instructgpt.utils import dist, interrupt
from instructgpt.utils.device import autocast, resolve_device
from instructgpt.utils.logging import MetricsLogger, info
from instructgpt.utils.seed import get_rng_state, set_rng_state, set_seed


class Batch(Protocol):
    num_loss_tokens: int
    # Step-level loss weights (see objectives/sft.py) or None. With weights, step_fn's loss is
    # already normalised over the whole step and fit adds it as is; without, fit divides the
    # summed loss by the step's loss tokens.
    weights: torch.Tensor | None

    def to(self, device: torch.device) -> "Batch": ...


# step_fn(model, batch) -> (loss, tokens processed[, sums]): a summed loss, or a weighted one
# (Batch.weights); `sums` are statistics (floats) that fit adds up over the step's micro-batches.
StepFn = Callable[[torch.nn.Module, Any], tuple]


@dataclass
class FitResult:
    step: int
    last_eval: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    # The trained model as an ordinary module for what follows training (scoring, saving): the
    # model itself in one process or under DDP; gathered from the shards under FSDP2. None on
    # every rank but 0: only rank 0 goes on after `fit`.
    model: torch.nn.Module | None = None
    skipped_steps: int = 0  # steps without an update: their loss or gradient norm was not finite


def fit(model: torch.nn.Module, step_fn: StepFn, batches_for_step: Callable[[int], list[Batch]],
        train: TrainConfig, optim: OptimConfig, out_dir: str | Path, logger: MetricsLogger, *,
        evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        resume: bool = False, flops_per_token: float | None = None, desc: str = "train",
        after_step: Callable[[int, dict[str, float]], dict[str, float]] | None = None) -> FitResult:
    """Train `model` for `train.max_steps` optimizer steps.

    `batches_for_step(step)` returns the `train.grad_accum` micro-batches of that step and must
    depend only on `step` (so a resumed run sees the same data). The loss of a step is the sum
    of every micro-batch's summed loss divided by the step's total loss tokens (or, for batches
    carrying step-level `weights`, the sum of their weighted losses), so any split into
    micro-batches gives the same gradient. `after_step(step, sums)` runs after each optimizer
    step (PPO's EMA and KL controller) with the step's summed step_fn statistics; the metrics it
    returns are logged with the step's when the step is logged.

    Under torchrun (utils/dist.py) `batches_for_step` returns this rank's micro-batches of the
    global step, the loss is normalised over the global step's loss tokens, the step statistics
    passed to `after_step` are summed over the ranks, and only rank 0 logs and checkpoints
    (into a folder every rank can read, for --resume).
    """
    dist.setup(train.distributed)
    device = resolve_device(train.device)
    set_seed(train.seed)
    ckpt_root = Path(out_dir) / "checkpoints"
    result = FitResult(step=0)
    ckpt = latest_checkpoint(ckpt_root) if resume else None
    if resume and ckpt is None:
        info(f"{desc}: no checkpoint to resume from in {ckpt_root}; starting at step 0")
    state = load_checkpoint(ckpt, model) if ckpt is not None else None  # weights before any wrapping
    # a resumed run keeps the precision its checkpoint was trained in (where `auto` is decided by
    # timing a product, a busy machine can tip it the other way; and a run's numerics should not change midway)
    saved = (state or {}).get("precision") if train.precision == "auto" else None
    train = train.model_copy(update={"precision": saved or resolve_precision(device, train.precision)})
    model.to(device)
    restore_attention = use_attention(model, resolve_attention(train.attention, device, train.seq_len))
    restore_cache = without_kv_cache(model)
    if train.compile:
        from instructgpt.train.compile import compile_blocker, compile_decoders
        if (blocker := compile_blocker(device)) is not None:
            info(f"{desc}: train.compile skipped: {blocker}; training runs uncompiled")
        else:
            info(f"{desc}: torch.compile of {compile_decoders(model)} transformer body(ies), layer by layer; "
                 "the first step compiles")
    parallel = Parallel(model, step_fn, train.distributed, device)
    if parallel.strategy != "none":
        info(f"{desc}: {parallel.strategy} over {parallel.world} processes, "
             f"{train.batch_size * train.grad_accum * parallel.world} sequences a step")
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, train.max_steps)
    if state is not None:
        if (state.get("strategy") == "fsdp") != (parallel.strategy == "fsdp"):
            raise UserError(f"{ckpt}: saved under strategy {state.get('strategy', 'ddp/none')!r}; resume with "
                            f"the same train.distributed.strategy (now {parallel.strategy!r})")
        parallel.load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        result.step = result.resumed_from = state["step"]
        logger.rewind(result.step)
        info(f"{desc}: resumed from {ckpt} (step {result.step}, precision {train.precision})")
    peak = measure_peak_flops(device.type, "bfloat16" if train.precision == "bf16" else "float32") \
        if flops_per_token else None

    from tqdm.auto import tqdm
    bar = tqdm(total=train.max_steps, initial=result.step, desc=desc, disable=not (train.progress and dist.is_main()),
               dynamic_ncols=True)
    window_tokens, window_s = 0, 0.0  # training time only: evaluation and saving excluded
    bad_in_row = 0  # consecutive steps skipped for a non-finite loss or gradient
    try:
        for step in range(result.step, train.max_steps):
            interrupt.check()
            started = time.perf_counter()
            micro_batches = batches_for_step(step)
            loss, loss_tokens, processed, grad_norm, sums, skipped = train_step(
                model, step_fn, micro_batches, optimizer, train, optim.grad_clip, device, parallel)
            scheduler.step()
            window_s += time.perf_counter() - started
            result.step = done = step + 1
            window_tokens += processed
            if skipped:
                bad_in_row, result.skipped_steps = bad_in_row + 1, result.skipped_steps + 1
                _check_bad_steps(bad_in_row, train.max_bad_steps, done, loss, grad_norm, micro_batches, ckpt_root,
                                 desc, bar)
            else:
                bad_in_row = 0
            extra = after_step(done, sums) if after_step else {}
            if done % train.log_every == 0 or done == train.max_steps:
                metrics = {**extra, "train/loss": loss, "train/lr": scheduler.get_last_lr()[0],
                           "train/grad_norm": grad_norm, "train/loss_tokens": loss_tokens,
                           "train/tokens_per_s": window_tokens / max(window_s, 1e-9),
                           "train/skipped_steps": result.skipped_steps}
                if peak:
                    # tokens/s counts every rank's tokens; the peak is one device's
                    metrics["train/mfu"] = mfu(flops_per_token, metrics["train/tokens_per_s"] / parallel.world, peak)
                logger.log(done, metrics)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{metrics['train/tokens_per_s']:.0f}")
                window_tokens, window_s = 0, 0.0
            last = done == train.max_steps
            if evaluate and ((train.eval_every and done % train.eval_every == 0) or last):
                with parallel.evaluating():
                    result.last_eval = _evaluate(model, evaluate, train, device)
                logger.log(done, result.last_eval)
                if dist.is_main():
                    bar.write(f"{desc} step {done}: " + ", ".join(f"{k}={v:.4f}" for k, v in result.last_eval.items()))
            if ((train.save_every and done % train.save_every == 0) or last) and not bad_in_row:
                # no checkpoint during a run of skipped steps: the newest one stays a good step's
                _save(parallel, ckpt_root, done, optimizer, scheduler, train)
            bar.update(1)
    except Exception as e:
        if dist.active() and _lost_rank(e):
            last = latest_checkpoint(ckpt_root)
            raise UserError(f"rank {dist.rank()}: lost contact with another rank at step {result.step + 1} "
                            f"({_first_sentence(e)}); the job stops. Rerun the same command with --resume to "
                            f"continue from {last or 'the start (no checkpoint yet)'}") from e
        raise
    finally:
        bar.close()
        restore_attention()
        restore_cache()
    if evaluate and not result.last_eval:  # resumed at the final step: nothing was trained
        with parallel.evaluating():
            result.last_eval = _evaluate(model, evaluate, train, device)
    result.model = parallel.plain_model()
    if result.model is not None:
        result.model.to(device)
    return result


def _save(parallel: Parallel, root: Path, step: int, optimizer, scheduler, train: TrainConfig) -> None:
    """Rank 0 writes `step-N` (FSDP2: every rank joins the gathers first)."""
    state = {"step": step, "optimizer": parallel.optimizer_state(optimizer), "scheduler": scheduler.state_dict(),
             "rng": get_rng_state(), "strategy": parallel.strategy, "precision": train.precision}
    keep = train.keep_checkpoints
    plain = parallel.plain_model()
    if plain is None:
        return
    try:
        save_checkpoint(root, step, plain, state, keep=keep)
    except OSError as e:  # a full disk, a lost mount: the half-written folder is already removed
        raise UserError(f"could not write checkpoint step-{step} in {root} ({e.strerror or e}); the previous "
                        f"checkpoint ({latest_checkpoint(root) or 'none'}) stays. Free space and rerun with "
                        f"--resume") from e


def _first_sentence(e: BaseException) -> str:
    """'[.../pair.cc:537] Read error [127.0.0.1]:601: Connection reset by peer. This is ...' ->
    'Read error [127.0.0.1]:601: Connection reset by peer'."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return text.split(". ")[0][:200]


def _lost_rank(e: BaseException) -> bool:
    """A collective that failed because a peer died or timed out (gloo / NCCL)."""
    text = str(e)
    return isinstance(e, torch.distributed.DistError) or (
        isinstance(e, RuntimeError) and any(k in text for k in ("gloo", "NCCL", "Connection", "timed out", "Timed out")))


class StepOutcome(NamedTuple):
    loss: float             # mean loss per loss token (or the step's weighted loss)
    loss_tokens: int
    tokens: int             # tokens processed
    grad_norm: float
    sums: dict[str, float]  # step_fn statistics summed over the micro-batches (and ranks)
    skipped: bool           # the loss or the gradient norm was not finite: no update was made


def train_step(model, step_fn: StepFn, micro_batches: list, optimizer, train: TrainConfig,
               grad_clip: float, device: torch.device, parallel: Parallel | None = None) -> StepOutcome:
    """One optimizer step over the micro-batches. Under torchrun the micro-batches are this rank's;
    counts, the loss and the statistics returned are the global step's. A step whose loss or
    gradient norm is not finite changes no weight and no optimizer state (`skipped`)."""
    parallel = parallel or Parallel(model, step_fn, None, device)
    model.train()
    loss_tokens = int(dist.all_reduce_sum([sum(b.num_loss_tokens for b in micro_batches)])[0])
    if loss_tokens == 0:
        raise ValueError("a training step has no tokens that carry loss; check the data and the loss mask")
    divisor = 1 if micro_batches[0].weights is not None else loss_tokens
    total, processed, sums = 0.0, 0, {}
    for i, batch in enumerate(micro_batches):
        with parallel.micro_batch(sync=i == len(micro_batches) - 1):
            with autocast(device, train.precision):
                loss, n, *stats = parallel.runner(batch.to(device))
            (loss * (parallel.loss_scale / divisor)).backward()
        total += loss.item()
        processed += n
        for key, value in (stats[0] if stats else {}).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    if dist.active():  # one collective for the loss, the tokens and the statistics
        sums = dist.sum_stats({**sums, "_loss": total, "_tokens": processed})
        total, processed = sums.pop("_loss"), sums.pop("_tokens")
    params = [p for p in model.parameters() if p.grad is not None]
    # max_norm=inf measures the norm without clipping
    grad_norm = parallel.clip(params, grad_clip if grad_clip > 0 else math.inf)
    skipped = not (math.isfinite(total) and math.isfinite(grad_norm))  # the same on every rank
    if not skipped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepOutcome(total / divisor, loss_tokens, int(processed), grad_norm, sums, skipped)


def _check_bad_steps(in_row: int, limit: int, step: int, loss: float, grad_norm: float, micro_batches: list,
                     ckpt_root: Path, desc: str, bar) -> None:
    """Report a skipped step; stop after `limit` in a row, naming the step and its tasks."""
    tasks = sorted({t for b in micro_batches for t in (getattr(b, "tasks", None) or ())})
    where = f"step {step}" + (f" (tasks: {', '.join(tasks)})" if tasks else "")
    if dist.is_main():
        bar.write(f"{desc}: {where}: loss {loss}, gradient norm {grad_norm}: skipped, no update "
                  f"({in_row} in a row)")
    if in_row >= limit:
        last = latest_checkpoint(ckpt_root)
        raise UserError(f"{desc}: {in_row} steps in a row had a non-finite loss or gradient, the last {where}; "
                        f"training stopped. The last good checkpoint is {last or 'none (none was saved yet)'}; "
                        f"lower optim.lr, use train.precision=fp32 or check those tasks' data")


@torch.no_grad()
def _evaluate(model, evaluate, train: TrainConfig, device: torch.device) -> dict[str, float]:
    model.eval()
    try:
        with autocast(device, train.precision):
            return evaluate(model)
    finally:
        model.train()
