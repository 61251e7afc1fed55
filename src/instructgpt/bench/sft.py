"""`instructgpt bench sft`: our SFT stage against TRL's SFTTrainer, padded and packed.

Same model, tokenizer, examples (the ChatML ids and completion masks our encoder makes, given to
TRL pre-tokenized with `completion_only_loss`), batch of 16 rows (SmolLM2: 8), optimizer AdamW with clipping.
Ours: `stages.sft.build_step` + `train.loop.train_step` with the stage's default loss
(task_balanced, the output head on answer tokens only). Packed: ours fills 16 rows of
`seq_len` with per-example attention blocks; TRL packs with its default (best-fit decreasing,
padding-free: the batch becomes one long row). tokens/s counts real (non-pad) tokens.
"""
from __future__ import annotations

import time

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.bench.workload import flops_per_token, head_flops, workload
from instructgpt.config import OptimConfig, SFTConfig
from instructgpt.models.build import pad_id
from instructgpt.train.optim import build_optimizer
from instructgpt.utils.device import resolve_device
from instructgpt.utils.logging import info

BATCH = {"tiny": 16, "small": 16, "smollm2": 8}
GOALS = {False: 2.5, True: 3.5}  # ours/TRL: padded, packed


def ours_side(size: str, packed: bool, precision: str, steps: int, rounds: int, seq_len: int):
    from instructgpt.stages.sft import build_step, plan_steps, sft_step
    from instructgpt.train.loop import train_step
    w = workload(size)
    device = resolve_device("auto")
    cfg = SFTConfig(packing=packed, train={"batch_size": BATCH[size], "seq_len": seq_len, "precision": precision,
                                           "max_steps": rounds * (steps + 1)})
    model = w.model().to(device)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-5))
    plan = plan_steps(w.encoded, cfg)
    task_ids = {name: i for i, name in enumerate(w.encoded)}
    pad = pad_id(w.tokenizer)
    body, head = 3 * flops_per_token(model), 3 * head_flops(model)
    position = iter(range(len(plan)))

    def one_round() -> Steps:
        out = Steps()
        for i in range(steps + 1):
            keys = plan[next(position)]
            started = time.perf_counter()
            batches = build_step(keys, w.encoded, task_ids, cfg, pad)
            train_step(model, sft_step, batches, optimizer, cfg.train, 1.0, device)
            elapsed = time.perf_counter() - started
            if i == 0:
                continue  # warm-up
            tokens = sum(min(len(w.encoded[t][j][0]), seq_len) for micro in keys for t, j in micro)
            positions = sum(b.input_ids.numel() for b in batches)
            loss_positions = sum(b.num_loss_tokens for b in batches)
            out.seconds.append(elapsed)
            out.units.append(tokens)
            out.flops.append(body * positions + head * loss_positions)
        return out

    return one_round


def trl_side(size: str, packed: bool, precision: str, steps: int, seq_len: int):
    from instructgpt.bench import trl_side as T
    T.require_trl()
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig, SFTTrainer
    w = workload(size)
    model = w.model()
    rows = [{"input_ids": ids[:seq_len], "completion_mask": [int(m) for m in mask[:seq_len]]}
            for examples in w.encoded.values() for ids, mask in examples]
    args = TRLSFTConfig(**T.common_args(precision, BATCH[size]), max_length=seq_len, packing=packed,
                        completion_only_loss=True, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=w.tokenizer)
    per_position = 3 * (flops_per_token(model) + head_flops(model))  # the head runs at every position

    def count(batch: dict) -> tuple[float, float]:
        ids = batch["input_ids"]
        real = batch["attention_mask"].sum() if "attention_mask" in batch else ids.numel()
        return float(real), per_position * ids.numel()

    return T.rounds(trainer, count, steps)


def run(steps: int = 6, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny", "small"),
        rounds: int = 3, precision: str = "auto", seq_len: int = 256, packed: tuple[bool, ...] = (False, True),
        write: bool = True) -> list[harness.Row]:
    precision, peak = harness.setup(precision)
    rows = []
    for size in sizes:
        for pack in packed:
            work = "SFT packed" if pack else "SFT"
            info(f"bench sft: {work}, {size}, {precision}, {rounds} rounds of {steps} steps per side")
            measured = harness.alternate({"ours": ours_side(size, pack, precision, steps, rounds, seq_len),
                                          "trl": trl_side(size, pack, precision, steps, seq_len)}, rounds)
            rows.append(harness.row(work, size, "tokens/s", measured, peak, precision, goal=GOALS[pack]))
    if write:
        harness.write("sft", rows, peak, out)
    return rows
