"""`instructgpt bench SUITE`: our stages side by side with the tool people would otherwise pick, on
the same work in one process, medians of alternating rounds after warm-up (harness.py).

    pretrain   tokens/s and MFU of each preset (no TRL equivalent)
    sft        SFT and packed SFT against TRL's SFTTrainer
    reward     the K-way reward model against TRL's RewardTrainer on the exploded pairs
    dpo        DPO against TRL's DPOTrainer
    ppo        a PPO step against TRL 1.12's experimental PPOTrainer
    decode     our decoder against `model.generate`
    all        every suite above, one table (benchmarks/results/all.md)
    fastpaths  each fast path of our stages against the straightforward way (before / after)
    serve      concurrent chat requests against `instructgpt serve`: success and latency percentiles
"""
from __future__ import annotations

SUITES = ("pretrain", "sft", "reward", "dpo", "ppo", "decode", "all", "fastpaths", "serve")


def run_bench(suite: str, steps: int | None, out: str, **options) -> object:
    import importlib
    module = importlib.import_module(f"instructgpt.bench.{'suites' if suite == 'all' else suite}")
    return module.run(out=out, **({"steps": steps} if steps is not None else {}), **options)
