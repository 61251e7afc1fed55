"""`instructgpt bench pretrain`: pretraining throughput and MFU of each preset (`fit` on random tokens:
speed does not depend on which). TRL has no pretraining stage, so the row stands alone."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.config import ModelConfig, OptimConfig, TrainConfig
from instructgpt.data.lm import LMBatch
from instructgpt.models.build import build_model, count_parameters
from instructgpt.objectives import causal_lm_loss
from instructgpt.train import fit
from instructgpt.train.flops import resolve_precision, training_flops_per_token
from instructgpt.utils.logging import MetricsLogger, info, read_metrics

VOCAB = 4096            # the demo tokenizer's size; throughput does not depend on which tokens
BATCH, SEQ_LEN = 4, 256  # 1,024 tokens per step
WARMUP_STEPS = 1         # excluded from the timing (allocator and kernel warm-up)


class _VocabOnly:
    """What `build_model` reads from a tokenizer."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 1

    def __len__(self) -> int:
        return VOCAB


def bench_pretrain(preset: str, precision: str, steps: int, workdir: Path) -> dict:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="llama", preset=preset), _VocabOnly())
    non_embedding = count_parameters(model, non_embedding=True)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ_LEN))
    train = TrainConfig(max_steps=WARMUP_STEPS + steps, batch_size=BATCH, seq_len=SEQ_LEN, precision=precision,
                        log_every=1, save_every=0, eval_every=0, device="auto", progress=False)
    logger = MetricsLogger(workdir / f"{preset}-{precision}.jsonl")
    step_fn = lambda m, b: (causal_lm_loss(m(input_ids=b.input_ids).logits, b.labels)[0], b.input_ids.numel())  # noqa: E731
    with harness.PeakMemory() as memory:
        fit(model, step_fn, lambda step: [LMBatch(ids, ids)], train, OptimConfig(), workdir / f"{preset}-{precision}",
            logger, flops_per_token=training_flops_per_token(non_embedding))
    logger.close()
    rows = [r for r in read_metrics(logger.path) if r["step"] > WARMUP_STEPS]
    return {"preset": preset, "precision": precision, "non_embedding_params": non_embedding,
            "tokens_per_s": [r["train/tokens_per_s"] for r in rows], "peak_mb": memory.peak_mb,
            "flops_per_token": training_flops_per_token(non_embedding)}


def run(steps: int = 8, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny", "small"),
        write: bool = True) -> list[harness.Row]:
    """Each preset in fp32, and in bf16 autocast where this machine's bf16 matmuls are the faster (on a
    CPU without bf16 units they run ~100x slower, and a bf16 run would only measure that)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = harness.peaks(device)
    precisions = ("fp32", "bf16") if resolve_precision(torch.device(device), "auto") == "bf16" else ("fp32",)
    info(f"bench: measured peak matmul on {device}: fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, "
         f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s" + ("" if "bf16" in precisions else "; bf16 runs skipped (slower)"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in sizes:
            for precision in precisions:
                info(f"bench: {preset} {precision} ({steps} timed steps of {BATCH}x{SEQ_LEN} tokens)")
                r = bench_pretrain(preset, precision, steps, Path(tmp))
                tokens = BATCH * SEQ_LEN
                timed = Steps([tokens / rate for rate in r["tokens_per_s"]], [tokens] * len(r["tokens_per_s"]),
                              [tokens * r["flops_per_token"]] * len(r["tokens_per_s"]), r["peak_mb"])
                rows.append(harness.row("pretrain (causal LM)", preset, "tokens/s", {"ours": timed}, peak, precision,
                                        non_embedding_params=r["non_embedding_params"],
                                        notes=f"{r['non_embedding_params'] / 1e6:.1f}M non-embedding parameters, "
                                              f"{BATCH}x{SEQ_LEN} tokens a step; no TRL equivalent"))
    if write:
        harness.write("pretrain", rows, peak, out)
    return rows
