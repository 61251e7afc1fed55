"""Build new models from presets and load existing HF model folders."""
from __future__ import annotations

from pathlib import Path

import torch

from instructgpt.config.errors import UserError
from instructgpt.config.schema import ModelConfig
from instructgpt.models.presets import PRESETS


def build_model(cfg: ModelConfig, tokenizer) -> torch.nn.Module:
    """A fresh `LlamaForCausalLM` or `BertForMaskedLM` sized by `cfg.preset`, or `cfg.path` loaded."""
    if cfg.path:
        return load_model(cfg.path, cfg.arch)
    if cfg.preset not in PRESETS:
        raise UserError(f"unknown model preset '{cfg.preset}' (key model.preset; choose {', '.join(PRESETS)})")
    size = PRESETS[cfg.preset]
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id}
    if cfg.arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM
        config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=cfg.max_position_embeddings,
                             tie_word_embeddings=False, **size, **special)
        return LlamaForCausalLM(config)
    from transformers import BertConfig, BertForMaskedLM
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=cfg.max_position_embeddings,
                        pad_token_id=tokenizer.pad_token_id, **size)
    return BertForMaskedLM(config)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(path: str | Path, arch: str = "llama", dtype: str = "float32") -> torch.nn.Module:
    """Load an HF folder as a causal LM (`llama`) or masked LM (`bert`), in fp32 unless `dtype` says
    otherwise ("auto": the precision the weights were saved in)."""
    path = Path(path)
    if path.suffix == ".gguf":
        raise UserError(f"{path}: a GGUF file; convert it first with `instructgpt import {path} OUT`")
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); key model.path")
    if dtype != "auto" and dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}' (use auto, {', '.join(DTYPES)})")
    check_architecture(path, arch)
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per model floods stage, eval and server logs
    auto = AutoModelForCausalLM if arch == "llama" else AutoModelForMaskedLM
    return auto.from_pretrained(str(path), dtype="auto" if dtype == "auto" else DTYPES[dtype])


def check_architecture(path: Path, arch: str = "llama") -> None:
    """A one-line error when config.json names a model of another kind: loading a reward model or an
    encoder as a causal LM would make up an output head (transformers only warns)."""
    import json
    config = path / "config.json"
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError) as e:
        raise UserError(f"{config}: not a readable JSON config ({e})") from None
    wanted = "ForCausalLM" if arch == "llama" else "ForMaskedLM"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        raise UserError(f"{path}: a reward model ({architectures[0]}), not a policy; give a causal LM folder such "
                        f"as runs/NAME/sft or runs/NAME/ppo (key model.path, or the model to serve)")
    if architectures and not any(a.endswith(wanted) for a in architectures):
        raise UserError(f"{path}: {architectures[0]} is not a *{wanted} model, which this needs (key model.path)")


def check_tokenizer(model: torch.nn.Module, tokenizer, stage: str) -> None:
    """A tokenizer with ids beyond the model's embedding table belongs to another model; the error names
    both folders (as they were loaded from)."""
    size = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > size:
        raise UserError(f"{stage}: {tokenizer.name_or_path} with model {model.name_or_path}: the tokenizer has "
                        f"{len(tokenizer):,} tokens but the model embeds {size:,}: they "
                        f"come from different models; key tokenizer (default: the model folder's own)")


def pad_id(tokenizer) -> int:
    """The id batches are padded with: the pad token, else end of text, else 0 (never attended to)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0


def count_parameters(model: torch.nn.Module, non_embedding: bool = False) -> int:
    """All parameters, or those outside the token/position embeddings and the output head."""
    skip: set[int] = set()
    if non_embedding:
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                skip.add(id(module.weight))
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if out is not None:
            skip.add(id(out.weight))
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen and id(p) not in skip:
            seen.add(id(p))
            total += p.numel()
    return total
