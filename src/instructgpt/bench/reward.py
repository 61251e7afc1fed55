"""`instructgpt bench reward`: our K-way reward model step against TRL's RewardTrainer.

The same comparisons, K = 4 ranked completions per prompt. Ours puts all K completions of a
prompt in the batch once and forms its C(K,2) = 6 pairs on the scores (InstructGPT eq. 1): one
forward per completion, the prompt computed once with the K completions branching from it
(data/prefix.py). TRL trains on the exploded pairs, two full sequences per pair. Both do the
same number of comparisons per step (4 prompts = 24 pairs); the rate is pairs/s.
"""
from __future__ import annotations

import time

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.bench.workload import flops_per_token, workload
from instructgpt.config import OptimConfig, TrainConfig
from instructgpt.data.preference import encode_completion, encode_prompt, reward_batch
from instructgpt.models.build import pad_id
from instructgpt.train.optim import build_optimizer
from instructgpt.utils.device import resolve_device
from instructgpt.utils.logging import info

PROMPTS, K, MAX_LEN = 4, 4, 256
PAIRS = PROMPTS * K * (K - 1) // 2
COMPARISONS = 128  # more than a run's steps use (they wrap around)
GOAL = 2.0


def ours_side(size: str, precision: str, steps: int):
    from instructgpt.models.reward import load_score_model
    from instructgpt.stages.reward import reward_step
    from instructgpt.train.loop import train_step
    w = workload(size, k=K)
    device = resolve_device("auto")
    model = load_score_model(w.model_dir, new_head=True).to(device)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-5))
    train = TrainConfig(precision=precision)
    pad = pad_id(w.tokenizer)
    per_token = 3 * flops_per_token(model)
    position = iter(range(0, 10 ** 9, PROMPTS))

    def one_round() -> Steps:
        out = Steps()
        for i in range(steps + 1):
            start = next(position) % (COMPARISONS - PROMPTS)
            started = time.perf_counter()
            batch = reward_batch(w.comparisons[start:start + PROMPTS], w.tokenizer, MAX_LEN, pad)
            train_step(model, reward_step, [batch], optimizer, train, 1.0, device)
            if i:
                out.seconds.append(time.perf_counter() - started)
                out.units.append(PAIRS)
                out.flops.append(per_token * batch.sequences.input_ids.numel())
        return out

    return one_round


def trl_side(size: str, precision: str, steps: int):
    from instructgpt.bench import trl_side as T
    T.require_trl()
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer
    from instructgpt.models.reward import load_score_model
    w = workload(size, k=K)
    model = load_score_model(w.model_dir, new_head=True)
    rows = []
    for c in w.comparisons[:COMPARISONS]:
        prompt = encode_prompt(w.tokenizer, c.prompt)
        ids = [encode_completion(w.tokenizer, prompt, text, MAX_LEN)[0] for text in c.completions]
        rows += [{"chosen_ids": ids[a], "rejected_ids": ids[b]} for a, b in c.pairs()]
    args = RewardConfig(**T.common_args(precision, PAIRS), max_length=MAX_LEN, dataset_num_proc=None)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=w.tokenizer)
    per_token = 3 * flops_per_token(model)
    return T.pair_rounds(trainer, per_token, steps)


def run(steps: int = 6, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny", "small"),
        rounds: int = 3, precision: str = "auto", write: bool = True) -> list[harness.Row]:
    precision, peak = harness.setup(precision)
    rows = []
    for size in sizes:
        info(f"bench reward: {size}, {precision}, K={K}, {PAIRS} pairs a step, {rounds} rounds of {steps} steps")
        measured = harness.alternate({"ours": ours_side(size, precision, steps),
                                      "trl": trl_side(size, precision, steps)}, rounds)
        rows.append(harness.row(f"reward model, K={K}", size, "pairs/s", measured, peak, precision, goal=GOAL))
    if write:
        harness.write("reward", rows, peak, out)
    return rows
