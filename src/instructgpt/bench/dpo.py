"""`instructgpt bench dpo`: our DPO step against TRL's DPOTrainer (sigmoid loss, β = 0.1).

The same exploded pairs of the K = 4 comparisons, 8 pairs a step. Ours computes the
reference log-probs once before training (`stages.dpo.reference_logprobs`), so a step is one
policy forward and backward over the pairs, each pair's prompt once with both answers branching
from it (data/prefix.py; the output head on completion tokens only); that one-off pass is timed separately and reported as its own rate. TRL runs its
default: a reference forward every step. TRL reads the pairs as text (prompt rendered with the
chat template, completion + end-of-turn); ours encodes the same text to the same ids.
"""
from __future__ import annotations

import time

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.bench.workload import flops_per_token, head_flops, workload
from instructgpt.config import OptimConfig, TrainConfig
from instructgpt.data.preference import encode_completion, encode_prompt
from instructgpt.models.build import pad_id
from instructgpt.tokenizer.chat import SPECIAL_TOKENS
from instructgpt.train.optim import build_optimizer
from instructgpt.utils.device import resolve_device
from instructgpt.utils.logging import info

PAIRS, MAX_LEN, BETA = 8, 256, 0.1
GOAL = 2.5

COMPARISONS = 128  # 768 pairs: more than a run's steps use (they wrap around)


def _pairs(w) -> list[tuple]:
    out = []
    for c in w.comparisons[:COMPARISONS]:
        prompt = encode_prompt(w.tokenizer, c.prompt)
        encoded = [encode_completion(w.tokenizer, prompt, text, MAX_LEN) for text in c.completions]
        out += [(encoded[a], encoded[b]) for a, b in c.pairs()]
    return out


def ours_side(size: str, precision: str, steps: int, reference: dict):
    from instructgpt.objectives.dpo import dpo_loss
    from instructgpt.stages.dpo import make_dpo_step, pair_batch, reference_logprobs
    from instructgpt.train.loop import train_step
    w = workload(size)
    device = resolve_device("auto")
    model = w.model().to(device)
    pairs = _pairs(w)
    pad = pad_id(w.tokenizer)
    started = time.perf_counter()
    ref = reference_logprobs(model, pairs, pad)
    reference["pairs_per_s"] = len(pairs) / (time.perf_counter() - started)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-5))
    train = TrainConfig(precision=precision)
    step_fn = make_dpo_step(dpo_loss, BETA)
    body, head = 3 * flops_per_token(model), 3 * head_flops(model)
    position = iter(range(0, 10 ** 9, PAIRS))

    def one_round() -> Steps:
        out = Steps()
        for i in range(steps + 1):
            start = next(position) % (len(pairs) - PAIRS)
            started = time.perf_counter()
            batch = pair_batch(pairs[start:start + PAIRS], ref[start:start + PAIRS], pad)
            train_step(model, step_fn, [batch], optimizer, train, 1.0, device)
            if i:
                s = batch.sequences
                out.seconds.append(time.perf_counter() - started)
                out.units.append(PAIRS)
                out.flops.append(body * s.input_ids.numel() + head * s.num_loss_tokens)
        return out

    return one_round


def trl_side(size: str, precision: str, steps: int):
    from instructgpt.bench import trl_side as T
    T.require_trl()
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    w = workload(size)
    model = w.model()
    end = SPECIAL_TOKENS["im_end"]
    rows = []
    for c in w.comparisons[:COMPARISONS]:
        prompt = w.tokenizer.apply_chat_template(list(c.prompt), tokenize=False, add_generation_prompt=True)
        rows += [{"prompt": prompt, "chosen": c.completions[a] + end, "rejected": c.completions[b] + end}
                 for a, b in c.pairs()]
    args = DPOConfig(**T.common_args(precision, PAIRS), max_length=MAX_LEN, beta=BETA, dataset_num_proc=None)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=w.tokenizer)
    # policy forward + backward and a reference forward, the head at every position
    per_position = 4 * (flops_per_token(model) + head_flops(model))
    return T.pair_rounds(trainer, per_position, steps)


def run(steps: int = 6, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny", "small"),
        rounds: int = 3, precision: str = "auto", write: bool = True) -> list[harness.Row]:
    precision, peak = harness.setup(precision)
    rows = []
    for size in sizes:
        info(f"bench dpo: {size}, {precision}, {PAIRS} pairs a step, {rounds} rounds of {steps} steps")
        reference: dict = {}
        measured = harness.alternate({"ours": ours_side(size, precision, steps, reference),
                                      "trl": trl_side(size, precision, steps)}, rounds)
        r = harness.row("DPO", size, "pairs/s", measured, peak, precision, goal=GOAL,
                        reference_pass_pairs_per_s=reference["pairs_per_s"])
        # the one-off reference pass, spread over one epoch of the pairs
        ours_epoch = 1 / (1 / r.ours + 1 / reference["pairs_per_s"])
        r.notes = (f"ours computes reference log-probs once, at {reference['pairs_per_s']:,.0f} pairs/s; "
                   f"counting that pass over one epoch, ours is {ours_epoch:,.1f} pairs/s, "
                   f"{ours_epoch / r.trl:.2f}× TRL" if r.trl else "")
        rows.append(r)
    if write:
        harness.write("dpo", rows, peak, out)
    return rows
