"""`instructgpt bench all`: every suite in one run, one table (benchmarks/results/all.md).

Sizes and rounds are chosen to finish in under fifteen minutes on 2 CPU cores: `tiny` and `small`
for SFT, the reward model and DPO (packed SFT on `tiny` only: TRL's packed `small` steps take ~16 s
each here; `instructgpt bench sft --sizes small` runs it), `tiny` for PPO, and SmolLM2-135M for SFT
and decoding when `models/smollm2-135m-instruct` exists.
"""
from __future__ import annotations

import time

from instructgpt.bench import decode, dpo, harness, ppo, pretrain, reward, sft
from instructgpt.bench.workload import SMOLLM2
from instructgpt.utils.logging import info


def run(steps: int = 4, out: str = "benchmarks/results") -> list[harness.Row]:
    """`steps` = timed steps per round of each training suite."""
    started = time.perf_counter()
    smollm2 = (SMOLLM2 / "config.json").is_file()
    small = max(2, steps - 1)  # `small` steps take ~10x as long as `tiny` ones: fewer of them, two rounds
    plan = [
        ("pretrain", lambda: pretrain.run(steps=2 * steps, write=False)),
        ("sft", lambda: sft.run(steps=steps, rounds=3, sizes=("tiny",), write=False)),
        ("sft small", lambda: sft.run(steps=small, rounds=2, sizes=("small",), packed=(False,), write=False)),
        ("reward", lambda: reward.run(steps=steps, rounds=3, sizes=("tiny",), write=False)),
        ("reward small", lambda: reward.run(steps=small, rounds=2, sizes=("small",), write=False)),
        ("dpo", lambda: dpo.run(steps=steps, rounds=3, sizes=("tiny",), write=False)),
        ("dpo small", lambda: dpo.run(steps=small, rounds=2, sizes=("small",), write=False)),
        ("ppo", lambda: ppo.run(steps=2, rounds=2, sizes=("tiny",), write=False)),
        ("decode", lambda: decode.run(steps=3, write=False)),
    ]
    if smollm2:
        plan.insert(3, ("sft smollm2", lambda: sft.run(steps=2, rounds=2, sizes=("smollm2",), packed=(False,),
                                                      write=False)))
    else:
        info(f"bench all: {SMOLLM2} not found; the SmolLM2 rows are skipped")
    rows = []
    for name, suite in plan:
        info(f"bench all: {name} ({time.perf_counter() - started:.0f} s so far)")
        rows += suite()
    info(f"bench all: done in {time.perf_counter() - started:.0f} s")
    harness.write("all", rows, harness.setup("auto")[1], out)
    return rows
