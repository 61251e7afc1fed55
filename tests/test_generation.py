"""KV-cache decoding: equals a decoder without cache, left padding changes nothing, stops on stop ids."""
from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from instructgpt.generation import generate
from instructgpt.generation.decode import filter_logits


def tiny_model(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def greedy_without_cache(model, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_cached_batched_greedy_equals_uncached_single_decoding():
    model = tiny_model()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    gen = generate(model, prompts, pad_id=0, stop_ids=[63], max_new_tokens=6)
    for row, prompt in enumerate(prompts):
        expected = greedy_without_cache(model, prompt, 6)
        got = gen.tokens[row][gen.mask[row]].tolist()
        assert got == expected[:len(got)]
    # logprobs are those of the chosen tokens under the model
    full = torch.tensor([prompts[1] + gen.tokens[1, :2].tolist()])
    logp = model(input_ids=full).logits[0, len(prompts[1]) - 1].log_softmax(-1)[gen.tokens[1, 0]]
    assert torch.allclose(gen.logprobs[1, 0], logp, atol=1e-5)


def test_stops_at_stop_id_and_masks_after_it():
    model = tiny_model()
    first = int(model(input_ids=torch.tensor([[3, 4]])).logits[0, -1].argmax())
    gen = generate(model, [[3, 4]], pad_id=0, stop_ids=[first], max_new_tokens=5)
    assert gen.tokens.shape == (1, 1) and gen.mask.tolist() == [[True]] and gen.stopped.tolist() == [True]


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    # nucleus 0.7: 0.5 alone is below it, 0.5 + 0.3 crosses it -> keep two
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]


def test_sampling_is_reproducible_with_a_generator():
    model = tiny_model()
    runs = [generate(model, [[1, 2, 3]], pad_id=0, stop_ids=[63], max_new_tokens=8, temperature=1.0,
                     generator=torch.Generator().manual_seed(7)).tokens for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
