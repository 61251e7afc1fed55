"""`train.attention`: the attention kernel a Hugging Face model trains with.

On a CPU at short sequences the plain ("eager") attention of transformers, a batched matmul and
a softmax, beats the fused SDPA kernel. Measured on this project's steps (bf16 autocast, 2 cores,
median ms per step, SDPA against eager): the tiny preset's packed SFT step (16 × 256 tokens)
157 / 130; its pretraining step 193–213 / 168–172 at 256 tokens and 193–200 / 153–166 at 128;
SmolLM2-135M's at 4 × 256 tokens 2,912–3,092 / 2,674–2,723. At 512 tokens SDPA wins
(tiny: 249 / 320), and at 384 they are even; `auto` picks eager up to EAGER_MAX_SEQ_LEN.
"""
from __future__ import annotations

from typing import Callable

import torch

EAGER_MAX_SEQ_LEN = 256


def resolve_attention(setting: str, device: torch.device, seq_len: int) -> str | None:
    """The implementation to train with, or None to keep the model's own ("auto" off a CPU or
    above EAGER_MAX_SEQ_LEN tokens)."""
    if setting == "auto":
        return "eager" if device.type == "cpu" and seq_len <= EAGER_MAX_SEQ_LEN else None
    return setting


def use_attention(model: torch.nn.Module, name: str | None) -> Callable[[], None]:
    """Switch `model` (a PEFT wrapper's base model too) to attention `name`; returns the function
    that switches it back. Models without the choice (the GRU encoder) are left alone."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    before = getattr(config, "_attn_implementation", None)
    if name is None or before is None or before == name or not hasattr(base, "set_attn_implementation"):
        return lambda: None
    base.set_attn_implementation(name)
    return lambda: base.set_attn_implementation(before)


def without_kv_cache(model: torch.nn.Module) -> Callable[[], None]:
    """Turn off `use_cache` in every Hugging Face config inside `model` (a policy and value model
    together, a PEFT wrapper) while it trains; returns the function that turns it back on. With it
    on, each forward builds a KV cache the step throws away, and under train.compile the cache's
    per-layer state made every compiled layer compile again. Our decoder asks for its cache itself."""
    configs = {id(c): c for m in model.modules() if getattr(c := getattr(m, "config", None), "use_cache", False)}
    for config in configs.values():
        config.use_cache = False

    def restore() -> None:
        for config in configs.values():
            config.use_cache = True
    return restore
