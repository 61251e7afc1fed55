"""Driving a TRL trainer for a benchmark round: timed steps and the work each step did.

TRL is a benchmark peer only (the `bench` extra), never a dependency of the package. Its
trainers get the settings that make the work equal to ours: our precision (TRL defaults to bf16
autocast, which is slow on a CPU without AMX), no gradient checkpointing (its default; we do not
recompute activations), no checkpoints or logging. A round is one `trainer.train()` of 1 + k
steps; the first is warm-up. A step's time is between consecutive `on_step_end` calls, so it
holds the data collation, forward, backward and optimizer step, as ours does.
"""
from __future__ import annotations

import tempfile
import time
from typing import Callable

from instructgpt.bench.harness import Steps
from instructgpt.config.errors import UserError


def require_trl(version: str = "1.16"):
    try:
        import trl
    except ImportError:
        raise UserError("the TRL side of `instructgpt bench` needs the bench extra: pip install -e '.[bench]' "
                        "(or `make bench`)") from None
    import datasets
    datasets.disable_progress_bars()  # tokenizing, packing: one bar each per trainer
    return trl


def common_args(precision: str, batch_size: int, seed: int = 0) -> dict:
    import torch
    return {"output_dir": tempfile.mkdtemp(prefix="instructgpt-bench-trl-"), "per_device_train_batch_size": batch_size,
            "learning_rate": 1e-5, "lr_scheduler_type": "constant", "max_grad_norm": 1.0, "seed": seed,
            "bf16": precision == "bf16", "gradient_checkpointing": False, "save_strategy": "no",
            "logging_strategy": "no", "report_to": "none", "disable_tqdm": True, "dataloader_num_workers": 0,
            "use_cpu": not torch.cuda.is_available(), "max_steps": 2}


class _Timer:
    """A TrainerCallback that stamps the end of every step."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        marks = self.marks = []

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                marks.append(time.perf_counter())

        self.callback = Stamp()


class Counting:
    """Wraps a data collator and records `count(batch)` = (units of work, model FLOPs) of each batch."""

    def __init__(self, collate: Callable, count: Callable[[dict], tuple[float, float]]) -> None:
        self.collate, self.count, self.counts = collate, count, []

    def __call__(self, examples):
        batch = self.collate(examples)
        self.counts.append(self.count(batch))
        return batch


def rounds(trainer, count: Callable[[dict], tuple[float, float]], steps: int) -> Callable[[], Steps]:
    """The trainer instrumented (step timer, counting collator); each call runs one round."""
    from transformers.trainer_callback import PrinterCallback
    timer = _Timer()
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics of every round
    trainer.add_callback(timer.callback)
    counting = Counting(trainer.data_collator, count)
    trainer.data_collator = counting
    return lambda: run_round(trainer, timer, counting, steps)


def pair_rounds(trainer, flops_per_position: float, steps: int) -> Callable[[], Steps]:
    """`rounds` for a preference trainer, whose batches hold chosen rows then rejected rows: units = pairs."""
    return rounds(trainer, lambda batch: (batch["input_ids"].size(0) // 2,
                                          flops_per_position * batch["input_ids"].numel()), steps)


def run_round(trainer, timer: _Timer, counting: Counting, steps: int) -> Steps:
    """`trainer.train()` for 1 + `steps` steps; the warm-up step is dropped."""
    timer.marks.clear()
    counting.counts.clear()
    trainer.args.max_steps = steps + 1
    trainer.train()
    seconds = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    counted = counting.counts[1:steps + 1]
    return Steps(seconds, [float(u) for u, _ in counted], [float(f) for _, f in counted])
