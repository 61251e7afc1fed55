"""`instructgpt bench fastpaths`: each fast path of our stages against the straightforward way, before
and after, on the same batches in alternating rounds (tests/test_fast_paths.py shows the losses agree).

    SFT           logits at every position → the head on answer tokens only → that, in chunks with the
                  gradient formed in the forward (objectives/linear_ce.py, the stage's step) → unpadded
                  rows (data/packing.unpad_batch, the stage's default without packing)
    reward model  every pair scored by its own two forwards → one forward per completion (K-way) →
                  each prompt once, its K completions branching from it
    DPO           a reference forward every step → reference log-probs computed once → unpadded rows →
                  each pair's prompt computed once, both answers branching from it (data/prefix.py)
    PPO rollout   sampling through the HF forward → our lean decoder (generation/llama.py)
    precision     fp32 → bf16 autocast (what `precision: auto` picks on this machine is the faster)
"""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.bench.workload import workload
from instructgpt.config import OptimConfig, SFTConfig, TrainConfig
from instructgpt.models.build import pad_id
from instructgpt.train.loop import train_step
from instructgpt.train.optim import build_optimizer
from instructgpt.utils.logging import info

CPU = torch.device("cpu")


def _variants(make_batches: Callable[[int], list], variants: dict[str, tuple], steps: int, rounds: int,
              precision: dict[str, str] | None = None) -> dict[str, Steps]:
    """variants: name -> (step_fn, model factory[, its own make_batches]); each trains its own model copy
    on the same examples."""
    state = {}
    for name, (step_fn, make_model, *own) in variants.items():
        model = make_model()
        state[name] = (model, build_optimizer(model, OptimConfig(lr=1e-5)), step_fn, own[0] if own else make_batches)
    position = {"next": 0}

    def round_of(name: str) -> Callable[[], Steps]:
        def one_round() -> Steps:
            model, optimizer, step_fn, batches_of = state[name]
            train = TrainConfig(precision=(precision or {}).get(name, "fp32"))
            out = Steps()
            for i in range(steps + 1):
                batches = batches_of(position["next"] + i)
                started = time.perf_counter()
                train_step(model, step_fn, batches, optimizer, train, 1.0, CPU)
                if i:
                    out.seconds.append(time.perf_counter() - started)
                    out.units.append(1)
            return out
        return one_round

    measured = {}
    for r in range(rounds):  # every variant sees the same steps' batches in a round
        got = harness.alternate({name: round_of(name) for name in variants}, 1)
        for name, steps_ in got.items():
            measured.setdefault(name, Steps()).extend(steps_)
        position["next"] += steps + 1
    return measured


def sft_variants(size: str, steps: int, rounds: int) -> dict[str, Steps]:
    from instructgpt.objectives.sft import example_losses, weighted_loss
    from instructgpt.stages import sft
    w = workload(size)
    cfg = SFTConfig(packing=False, unpad=False, train={"batch_size": 16, "seq_len": 256,
                                                       "max_steps": rounds * (steps + 1)})
    unpadded = cfg.model_copy(update={"unpad": True})
    plan = sft.plan_steps(w.encoded, cfg)
    task_ids = {name: i for i, name in enumerate(w.encoded)}
    pad = pad_id(w.tokenizer)

    def full_logits(model, batch):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits
        sums, _ = example_losses(logits, batch.labels, batch.example_index, batch.weights.numel())
        return weighted_loss(sums, batch.weights), batch.input_ids.numel()

    def head_on_answers(model, batch):
        return weighted_loss(sft.answer_nll(model, batch, batch.weights.numel()), batch.weights), 0

    return _variants(lambda i: sft.build_step(plan[i], w.encoded, task_ids, cfg, pad),
                     {"padded, logits at every position": (full_logits, w.model),
                      "padded, head on answer tokens": (head_on_answers, w.model),
                      "padded, chunked head + CE": (sft.sft_step, w.model),
                      "unpadded rows, chunked head + CE (the stage)": (
                          sft.sft_step, w.model, lambda i: sft.build_step(plan[i], w.encoded, task_ids, unpadded, pad))},
                     steps, rounds)


def reward_variants(size: str, steps: int, rounds: int) -> dict[str, Steps]:
    from instructgpt.data.preference import reward_batch
    from instructgpt.models.reward import load_score_model, sequence_rewards
    from instructgpt.stages.reward import reward_step
    w = workload(size)
    pad = pad_id(w.tokenizer)

    def exploded_pairs(model, batch):
        """Every untied pair of every prompt through the model as its own chosen/rejected rows."""
        s = batch.sequences
        winners, losers, owners = [], [], []
        for i in range(len(batch.ranks)):
            for j in range(len(batch.ranks)):
                if batch.group_ids[i] == batch.group_ids[j] and batch.ranks[i] < batch.ranks[j]:
                    winners.append(i), losers.append(j), owners.append(int(batch.group_ids[i]))
        rows = torch.tensor(winners + losers)
        r = sequence_rewards(model, s.input_ids[rows], s.attention_mask[rows])
        nll = -F.logsigmoid(r[:len(winners)] - r[len(winners):])
        _, group = torch.unique(torch.tensor(owners), return_inverse=True)
        per_group = torch.zeros(int(group.max()) + 1).index_add(0, group, nll) / torch.bincount(group)
        return per_group.sum(), s.input_ids.numel()

    def batches(layout: str) -> Callable[[int], list]:
        return lambda i: [reward_batch(w.comparisons[4 * i:4 * i + 4], w.tokenizer, 256, pad, layout=layout)]

    return _variants(batches("padded"),
                     {"exploded pairs (2 forwards a pair)": (exploded_pairs, lambda: load_score_model(w.model_dir, True)),
                      "K-way (1 forward a completion)": (reward_step, lambda: load_score_model(w.model_dir, True)),
                      "K-way, prompt once (the stage)": (reward_step, lambda: load_score_model(w.model_dir, True),
                                                         batches("shared_prompt"))},
                     steps, rounds)


def dpo_variants(size: str, steps: int, rounds: int) -> dict[str, Steps]:
    from instructgpt.bench.dpo import _pairs
    from instructgpt.objectives.dpo import dpo_loss
    from instructgpt.stages.dpo import make_dpo_step, pair_batch, reference_logprobs, sequence_logprobs
    w = workload(size)
    pad = pad_id(w.tokenizer)
    pairs = _pairs(w)[:8 * rounds * (steps + 1)]
    reference = w.model().eval()
    ref = reference_logprobs(reference, pairs, pad)
    step = make_dpo_step(dpo_loss, 0.1)

    def reference_every_step(model, batch):
        with torch.no_grad():
            batch.ref_logprobs = sequence_logprobs(reference, batch.sequences)
        return step(model, batch)

    def batches(layout: str) -> Callable[[int], list]:
        return lambda i: [pair_batch(pairs[8 * i:8 * i + 8], ref[8 * i:8 * i + 8], pad, layout)]

    return _variants(batches("padded"),
                     {"padded, reference forward every step": (reference_every_step, w.model),
                      "padded, reference log-probs once": (step, w.model),
                      "unpadded rows": (step, w.model, batches("unpadded")),
                      "prompt once per pair (the stage)": (step, w.model, batches("shared_prompt"))}, steps, rounds)


def rollout_variants(size: str, rounds: int) -> dict[str, Steps]:
    from instructgpt.data.preference import encode_prompt
    from instructgpt.generation.decode import generate
    w = workload(size)
    model = w.model().eval()
    prompts = [encode_prompt(w.tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in w.records[:16]]
    pad = pad_id(w.tokenizer)

    def sample(fast: bool) -> Callable[[], Steps]:
        def one_round() -> Steps:
            generator = torch.Generator().manual_seed(0)
            started = time.perf_counter()
            generate(model, prompts, pad_id=pad, stop_ids=[], max_new_tokens=32, temperature=1.0,
                     generator=generator, fast=fast)
            return Steps([time.perf_counter() - started], [16 * 32])
        return one_round

    sample(True)(), sample(False)()  # warm-up
    return harness.alternate({"HF forward": sample(False), "lean decoder": sample(True)}, rounds)


def precision_variants(size: str, steps: int, rounds: int) -> dict[str, Steps]:
    from instructgpt.stages import sft
    w = workload(size)
    cfg = SFTConfig(packing=False, train={"batch_size": 16, "seq_len": 256, "max_steps": rounds * (steps + 1)})
    plan = sft.plan_steps(w.encoded, cfg)
    task_ids = {name: i for i, name in enumerate(w.encoded)}
    pad = pad_id(w.tokenizer)
    return _variants(lambda i: sft.build_step(plan[i], w.encoded, task_ids, cfg, pad),
                     {"fp32": (sft.sft_step, w.model), "bf16 autocast": (sft.sft_step, w.model)}, steps, rounds,
                     precision={"fp32": "fp32", "bf16 autocast": "bf16"})


def run(steps: int = 4, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny",), rounds: int = 3,
        write: bool = True) -> list[dict]:
    results = []
    for size in sizes:
        for work, measure in (("SFT step", lambda: sft_variants(size, steps, rounds)),
                              ("reward step (4 prompts, K=4)", lambda: reward_variants(size, steps, rounds)),
                              ("DPO step (8 pairs)", lambda: dpo_variants(size, steps, rounds)),
                              ("PPO rollout sampling (16 x 32 tokens)", lambda: rollout_variants(size, rounds)),
                              ("SFT step precision", lambda: precision_variants(size, 1, 1))):
            info(f"bench fastpaths: {work}, {size}")
            measured = measure()
            before = harness.median_seconds(next(iter(measured.values())))
            for name, s in measured.items():
                results.append({"work": work, "size": size, "variant": name,
                                "ms": 1000 * harness.median_seconds(s), "speedup": before / harness.median_seconds(s),
                                "timed": len(s.seconds), "peak_mb": s.peak_mb})
    lines = ["| work | size | variant | ms (median) | speed-up over the first | timed steps |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['work']} | {r['size']} | {r['variant']} | {r['ms']:,.0f} | {r['speedup']:.2f}× | {r['timed']} |"
              for r in results]
    print("\n" + "\n".join(lines))
    if write:
        from pathlib import Path
        import json
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "fastpaths.md").write_text("# instructgpt bench fastpaths\n\n" + "\n".join(lines) + "\n")
        (path / "fastpaths.json").write_text(json.dumps(results, indent=1) + "\n")
        info(f"bench fastpaths: results -> {path / 'fastpaths.md'}")
    return results
