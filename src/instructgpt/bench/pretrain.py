"""`instructgpt bench pretrain`: pretraining throughput and MFU for each preset and precision, side by side."""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import torch

from instructgpt.config import ModelConfig, OptimConfig, TrainConfig
from instructgpt.data.lm import LMBatch
from instructgpt.models.build import build_model, count_parameters
from instructgpt.objectives import causal_lm_loss
from instructgpt.train import fit
from instructgpt.train.flops import measure_peak_flops, training_flops_per_token
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
    fit(model, step_fn, lambda step: [LMBatch(ids, ids)], train, OptimConfig(), workdir / f"{preset}-{precision}",
        logger, flops_per_token=training_flops_per_token(non_embedding))
    logger.close()
    rows = [r for r in read_metrics(logger.path) if r["step"] > WARMUP_STEPS]
    tokens_per_s = statistics.median(r["train/tokens_per_s"] for r in rows)
    return {"preset": preset, "precision": precision, "non_embedding_params": non_embedding,
            "tokens_per_s": tokens_per_s, "mfu": statistics.median(r["train/mfu"] for r in rows),
            "timed_steps": len(rows)}


def run(steps: int, out: str) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peaks = {p: measure_peak_flops(device, d) for p, d in (("fp32", "float32"), ("bf16", "bfloat16"))}
    info(f"bench: measured peak matmul on {device}: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
         f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("tiny", "small"):
            for precision in ("fp32", "bf16"):
                info(f"bench: {preset} {precision} ({steps} timed steps of {BATCH}x{SEQ_LEN} tokens)")
                r = bench_pretrain(preset, precision, steps, Path(tmp))
                # fit() logs MFU against its own precision's peak; also give it against the best
                # matmul rate this machine reached in any precision
                r["mfu_vs_best_peak"] = r["mfu"] * peaks[precision] / max(peaks.values())
                results.append(r)
    print(f"\npretraining throughput on {device} (peak fp32 {peaks['fp32'] / 1e9:.1f}, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s)")
    print(f"{'preset':<7} {'precision':<9} {'non-emb params':>14} {'tokens/s':>10} {'MFU (own peak)':>15} {'MFU (best peak)':>16}")
    for r in results:
        print(f"{r['preset']:<7} {r['precision']:<9} {r['non_embedding_params'] / 1e6:>13.2f}M "
              f"{r['tokens_per_s']:>10.0f} {r['mfu']:>15.1%} {r['mfu_vs_best_peak']:>16.1%}")
    for preset in ("tiny", "small"):
        fp32, bf16 = (next(r for r in results if r["preset"] == preset and r["precision"] == p)
                      for p in ("fp32", "bf16"))
        print(f"{preset}: bf16 / fp32 tokens/s = {bf16['tokens_per_s'] / fp32['tokens_per_s']:.2f}x")
    path = Path(out) / "pretrain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"device": device, "peak_flops": peaks, "results": results}, indent=2) + "\n")
    info(f"bench: results -> {path}")
    return results
