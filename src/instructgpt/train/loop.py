"""`fit()`: the one training loop every stage composes (accumulation, clipping, autocast,
eval / log / save cadence, resume). It knows nothing of the model or the loss."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from instructgpt.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from instructgpt.config.schema import OptimConfig, TrainConfig
from instructgpt.train.flops import measure_peak_flops, mfu, resolve_precision
from instructgpt.train.optim import build_optimizer, build_scheduler
from instructgpt.utils import interrupt
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
    """
    device = resolve_device(train.device)
    train = train.model_copy(update={"precision": resolve_precision(device, train.precision)})
    set_seed(train.seed)
    model.to(device)
    if train.compile:
        from instructgpt.train.compile import compile_decoders
        info(f"{desc}: torch.compile of {compile_decoders(model)} transformer body(ies); the first step compiles")
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, train.max_steps)
    ckpt_root = Path(out_dir) / "checkpoints"
    result = FitResult(step=0)
    ckpt = latest_checkpoint(ckpt_root) if resume else None
    if resume and ckpt is None:
        info(f"{desc}: no checkpoint to resume from in {ckpt_root}; starting at step 0")
    if ckpt is not None:
        state = load_checkpoint(ckpt, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        result.step = result.resumed_from = state["step"]
        logger.rewind(result.step)
        info(f"{desc}: resumed from {ckpt} (step {result.step})")
    peak = measure_peak_flops(device.type, "bfloat16" if train.precision == "bf16" else "float32") \
        if flops_per_token else None

    from tqdm.auto import tqdm
    bar = tqdm(total=train.max_steps, initial=result.step, desc=desc, disable=not train.progress,
               dynamic_ncols=True)
    window_tokens, window_s = 0, 0.0  # training time only: evaluation and saving excluded
    try:
        for step in range(result.step, train.max_steps):
            interrupt.check()
            started = time.perf_counter()
            loss, loss_tokens, processed, grad_norm, sums = train_step(
                model, step_fn, batches_for_step(step), optimizer, train, optim.grad_clip, device)
            scheduler.step()
            window_s += time.perf_counter() - started
            result.step = done = step + 1
            window_tokens += processed
            extra = after_step(done, sums) if after_step else {}
            if done % train.log_every == 0 or done == train.max_steps:
                metrics = {**extra, "train/loss": loss, "train/lr": scheduler.get_last_lr()[0],
                           "train/grad_norm": grad_norm, "train/loss_tokens": loss_tokens,
                           "train/tokens_per_s": window_tokens / max(window_s, 1e-9)}
                if peak:
                    metrics["train/mfu"] = mfu(flops_per_token, metrics["train/tokens_per_s"], peak)
                logger.log(done, metrics)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{metrics['train/tokens_per_s']:.0f}")
                window_tokens, window_s = 0, 0.0
            last = done == train.max_steps
            if evaluate and ((train.eval_every and done % train.eval_every == 0) or last):
                result.last_eval = _evaluate(model, evaluate, train, device)
                logger.log(done, result.last_eval)
                bar.write(f"{desc} step {done}: " + ", ".join(f"{k}={v:.4f}" for k, v in result.last_eval.items()))
            if (train.save_every and done % train.save_every == 0) or last:
                save_checkpoint(ckpt_root, done, model, {
                    "step": done, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": get_rng_state()}, keep=train.keep_checkpoints)
            bar.update(1)
    finally:
        bar.close()
    if evaluate and not result.last_eval:  # resumed at the final step: nothing was trained
        result.last_eval = _evaluate(model, evaluate, train, device)
    return result


def train_step(model, step_fn: StepFn, micro_batches: list, optimizer, train: TrainConfig,
                grad_clip: float, device: torch.device) -> tuple[float, int, int, float, dict[str, float]]:
    """One optimizer step over the micro-batches: (mean loss per token, loss tokens, tokens, grad norm,
    step_fn statistics summed over the micro-batches)."""
    model.train()
    loss_tokens = sum(b.num_loss_tokens for b in micro_batches)
    if loss_tokens == 0:
        raise ValueError("a training step has no tokens that carry loss; check the data and the loss mask")
    divisor = 1 if micro_batches[0].weights is not None else loss_tokens
    total, processed, sums = 0.0, 0, {}
    for batch in micro_batches:
        with autocast(device, train.precision):
            loss, n, *stats = step_fn(model, batch.to(device))
        (loss / divisor).backward()
        total += loss.item()
        processed += n
        for key, value in (stats[0] if stats else {}).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    if not math.isfinite(total):
        raise FloatingPointError(f"loss is {total}; lower optim.lr or use precision=fp32")
    params = [p for p in model.parameters() if p.grad is not None]
    # max_norm=inf measures the norm without clipping
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=grad_clip if grad_clip > 0 else math.inf)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / divisor, loss_tokens, processed, float(grad_norm), sums


@torch.no_grad()
def _evaluate(model, evaluate, train: TrainConfig, device: torch.device) -> dict[str, float]:
    model.eval()
    try:
        with autocast(device, train.precision):
            return evaluate(model)
    finally:
        model.train()
