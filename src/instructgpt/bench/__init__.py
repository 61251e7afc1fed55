"""`instructgpt bench SUITE`: measured side by side in one process, medians of alternating rounds.

    pretrain   tokens/s and MFU of each preset in fp32 and bf16
    decode     our decoder against `model.generate` (tiny model, SmolLM2-135M when imported)
    serve      concurrent chat requests against `instructgpt serve`: success and latency percentiles
"""
from __future__ import annotations

SUITES = ("pretrain", "decode", "serve")


def run_bench(suite: str, steps: int, out: str, **options) -> object:
    import importlib
    return importlib.import_module(f"instructgpt.bench.{suite}").run(steps=steps, out=out, **options)
