"""Every fast path of a training stage gives the loss and gradient of the straightforward computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from instructgpt.config import SFTConfig
from instructgpt.objectives.linear_ce import linear_cross_entropy
from instructgpt.objectives.sft import example_losses, weighted_loss
from instructgpt.stages import sft
from instructgpt.tokenizer.chat import encode_chat


def _llama(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, pad_token_id=0))


def _critic(layers: int):
    """A value/score model: a llama body with a one-number head."""
    from transformers import LlamaConfig, LlamaForSequenceClassification
    return LlamaForSequenceClassification(LlamaConfig(vocab_size=60, hidden_size=32, intermediate_size=64,
                                                      num_hidden_layers=layers, num_attention_heads=4,
                                                      pad_token_id=0, num_labels=1))


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [7, 1024])
def test_linear_cross_entropy_equals_head_then_cross_entropy(bias, chunk):
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=bias)
    hidden = torch.randn(30, 16, requires_grad=True)
    targets, weights = torch.randint(0, 50, (30,)), torch.rand(30)
    loss, nll = linear_cross_entropy(hidden, head, targets, weights, chunk=chunk)
    (3 * loss).backward()
    fused = [hidden.grad.clone(), head.weight.grad.clone()] + ([head.bias.grad.clone()] if bias else [])
    hidden.grad = None
    head.zero_grad()
    plain = F.cross_entropy(head(hidden), targets, reduction="none")
    (3 * (weights * plain).sum()).backward()
    assert torch.allclose(loss, (weights * plain).sum(), atol=1e-5)
    assert torch.allclose(nll, plain.detach(), atol=1e-5)
    for got, want in zip(fused, [hidden.grad, head.weight.grad] + ([head.bias.grad] if bias else [])):
        assert torch.allclose(got, want, atol=1e-6)


def test_linear_cross_entropy_runs_any_other_head_by_its_own_forward_with_the_same_loss():
    """A head that is not a plain nn.Linear (a LoRA-wrapped one) gets the same weighted sum through its
    own forward; no weights count every position once."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 50)
    wrapped = torch.nn.Sequential(linear)
    hidden = torch.randn(30, 16, requires_grad=True)
    targets, weights = torch.randint(0, 50, (30,)), torch.rand(30)
    for token_weights in (weights, None):
        losses, grads = [], []
        for head in (linear, wrapped):
            hidden.grad = None
            linear.zero_grad()
            loss, nll = linear_cross_entropy(hidden, head, targets, token_weights)
            loss.backward()
            losses.append((loss.detach(), nll))
            grads.append([hidden.grad.clone(), linear.weight.grad.clone(), linear.bias.grad.clone()])
        (fused, fused_nll), (plain, plain_nll) = losses
        assert torch.allclose(fused, plain, atol=1e-5) and torch.allclose(fused_nll, plain_nll, atol=1e-5)
        if token_weights is None:
            assert torch.allclose(plain, plain_nll.sum(), atol=1e-5)
        for got, want in zip(*grads):
            assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("packing,unpad", [(True, True), (False, True), (False, False)])
def test_sft_step_equals_full_logits_loss(tokenizer, packing, unpad):
    """The stage's step (decoder, then head + CE on answer tokens only, in chunks) against the model's
    own forward: logits at every position, the per-example NLL, the reduction's weights."""
    model = _llama(len(tokenizer))
    examples = [encode_chat(tokenizer, [{"role": "user", "content": f"question {i} " * (1 + i % 3)},
                                        {"role": "assistant", "content": "answer " * (1 + i % 4)}]) for i in range(6)]
    cfg = SFTConfig(packing=packing, unpad=unpad, train={"batch_size": 6, "seq_len": 64})
    [batch] = sft.build_step([[("a", i) for i in range(6)]], {"a": examples}, {"a": 0}, cfg, tokenizer.pad_token_id)
    loss, _ = sft.sft_step(model, batch)
    loss.backward()
    fast = _grads(model)
    model.zero_grad()
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids).logits                               # (B, T, V)
    sums, _ = example_losses(logits, batch.labels, batch.example_index, batch.weights.numel())
    plain = weighted_loss(sums, batch.weights)
    plain.backward()
    assert torch.allclose(loss, plain, atol=1e-5)
    assert torch.allclose(fast, _grads(model), atol=1e-6)


def test_unpadded_rows_give_the_padded_batch_loss_and_gradient(tokenizer):
    """unpad_batch (rows of the longest example, first-fit decreasing) against one example a padded row."""
    from instructgpt.data.packing import pad_batch, unpad_batch
    model = _llama(len(tokenizer))
    examples = [encode_chat(tokenizer, [{"role": "user", "content": "word " * (30 if i == 3 else 1 + i)},
                                        {"role": "assistant", "content": "yes " * (1 + i % 3)}]) for i in range(7)]
    weights = torch.rand(7)
    padded, unpadded = pad_batch(examples, tokenizer.pad_token_id), unpad_batch(examples, tokenizer.pad_token_id)
    assert unpadded.input_ids.size(0) < padded.input_ids.size(0)            # fewer rows,
    assert unpadded.input_ids.size(1) == padded.input_ids.size(1)           # each as long as the longest example
    out = []
    for batch in (padded, unpadded):
        model.zero_grad()
        loss, _ = sft.sft_step(model, type(batch)(**{**batch.__dict__, "weights": weights}))
        loss.backward()
        out.append((loss.detach(), _grads(model)))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5) and torch.allclose(out[0][1], out[1][1], atol=1e-6)


def test_bf16_autocast_sft_loss_stays_within_tolerance_of_fp32(tokenizer):
    model = _llama(len(tokenizer))
    examples = [encode_chat(tokenizer, [{"role": "user", "content": f"add {i} and {i}"},
                                        {"role": "assistant", "content": str(2 * i)}]) for i in range(4)]
    cfg = SFTConfig(packing=False, train={"batch_size": 4, "seq_len": 64})
    [batch] = sft.build_step([[("a", i) for i in range(4)]], {"a": examples}, {"a": 0}, cfg, tokenizer.pad_token_id)
    fp32, _ = sft.sft_step(model, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16, _ = sft.sft_step(model, batch)
    assert abs(float(bf16.detach()) - float(fp32.detach())) <= 0.02 * float(fp32.detach())


@pytest.mark.parametrize("layout", ["shared_prompt", "padded"])
def test_k_way_reward_batch_equals_the_exploded_pairs(tokenizer, layout):
    """One forward per completion (the default: each prompt once, its K completions branching from it)
    and C(K,2) pairs on the scores = the pairwise loss of every pair, each pair scored by its own
    forward (how TRL trains), averaged per prompt."""
    from instructgpt.data.comparisons import Comparison
    from instructgpt.data.preference import reward_batch
    from instructgpt.models.reward import batch_rewards, sequence_rewards
    from instructgpt.objectives.reward import ranking_loss
    from transformers import LlamaConfig, LlamaForSequenceClassification
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id, num_labels=1))
    comparisons = [Comparison(({"role": "user", "content": f"name a colour {g}"},),
                              tuple(f"colour {c} " * (1 + (g + c) % 3) for c in range(4)), (0, 2, 1, 3))
                   for g in range(3)]
    batch = reward_batch(comparisons, tokenizer, 64, tokenizer.pad_token_id, layout=layout)
    loss, _ = ranking_loss(batch_rewards(model, batch.sequences), batch.group_ids, batch.ranks)
    loss.backward()
    fast = _grads(model)
    model.zero_grad()
    s = reward_batch(comparisons, tokenizer, 64, tokenizer.pad_token_id, layout="padded").sequences
    if layout == "shared_prompt":
        assert batch.sequences.input_ids.numel() < s.input_ids.numel() / 2
    per_prompt = []
    for g, c in enumerate(comparisons):
        rows = [i for i in range(len(batch.group_ids)) if batch.group_ids[i] == g]
        pair_losses = []
        for w, l in c.pairs():
            two = [rows[w], rows[l]]
            r = sequence_rewards(model, s.input_ids[two], s.attention_mask[two])
            pair_losses.append(-F.logsigmoid(r[0] - r[1]))
        per_prompt.append(torch.stack(pair_losses).mean())
    plain = torch.stack(per_prompt).mean()
    plain.backward()
    assert torch.allclose(loss, plain, atol=1e-6)
    assert torch.allclose(fast, _grads(model), atol=1e-6)


@pytest.mark.parametrize("layout", ["shared_prompt", "unpadded", "padded"])
def test_dpo_reference_logprobs_and_policy_logprobs_equal_full_log_softmax(tokenizer, layout):
    """Each layout of the pairs (the stage's default: the prompt once, both answers branching from it)
    and the reference computed once, against each sequence in its own padded row through the model's
    full log-softmax; gradients too."""
    from instructgpt.data.packing import pad_batch
    from instructgpt.data.preference import encode_completion, encode_prompt
    from instructgpt.stages.dpo import pair_batch, reference_logprobs, sequence_logprobs
    model = _llama(len(tokenizer))
    prompt = encode_prompt(tokenizer, [{"role": "user", "content": "say something"}])
    pairs = [(encode_completion(tokenizer, prompt, "yes " * (15 * i + 1), 64),
              encode_completion(tokenizer, prompt, "no " * (3 - i), 64)) for i in range(3)]
    ref = reference_logprobs(model, pairs, tokenizer.pad_token_id, batch_size=2, layout=layout)  # (3, 2), once
    batch = pair_batch(pairs, ref, tokenizer.pad_token_id, layout)
    s = pad_batch([c for c, _ in pairs] + [r for _, r in pairs], tokenizer.pad_token_id)
    if layout != "padded":
        assert batch.sequences.input_ids.numel() < s.input_ids.numel()                       # fewer positions
    fast = sequence_logprobs(model, batch.sequences)                                          # (6,)
    (fast * torch.arange(1.0, 7.0)).sum().backward()
    fast_grads = _grads(model)
    model.zero_grad()
    logp = model(input_ids=s.input_ids, attention_mask=s.attention_mask).logits.float().log_softmax(-1)
    targets = s.labels[:, 1:]
    keep = targets != -100
    token_logp = logp[:, :-1].gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1) * keep
    plain = token_logp.sum(1)
    (plain * torch.arange(1.0, 7.0)).sum().backward()
    assert torch.allclose(fast, plain, atol=1e-4)
    assert torch.allclose(batch.ref_logprobs, plain.detach(), atol=1e-4)
    assert torch.allclose(fast_grads, _grads(model), atol=1e-5)


def test_ppo_action_logprobs_equal_full_log_softmax():
    from instructgpt.models.parts import action_logprobs, position_ids
    model = _llama(60)
    sequences = torch.randint(1, 60, (3, 12))
    mask = torch.ones_like(sequences)
    mask[0, :4] = 0  # left padding
    sequences[0, :4] = 0
    fast, entropy = action_logprobs(model, sequences, mask, 5, with_entropy=True)
    logits = model(input_ids=sequences, attention_mask=mask, position_ids=position_ids(mask)).logits.float()
    logp = logits.log_softmax(-1)[:, -6:-1]
    plain = logp.gather(-1, sequences[:, -5:, None]).squeeze(-1)
    assert torch.allclose(fast, plain, atol=1e-5)
    assert torch.allclose(entropy, -(logp.exp() * logp).sum(-1), atol=1e-5)


def test_unpadded_decoder_states_and_gradients_equal_the_padded_batch():
    """models.parts.decoder_hidden packs a left-padded batch (gaps after a stop too) into fewer rows;
    the log-probs, values and their gradients equal the padded forward's."""
    from instructgpt.models.parts import _unpadded_layout, action_logprobs, position_ids
    model = _llama(60)
    sequences = torch.randint(1, 60, (4, 12))
    mask = torch.ones_like(sequences)
    mask[1, :7] = mask[2, :7] = mask[3, :8] = 0          # left padding: lengths 12, 5, 5, 4
    mask[2, -1] = 0                                       # a response that stopped early
    sequences[mask == 0] = 0
    assert _unpadded_layout(mask) is not None             # 3 packed rows instead of 4
    fast, _ = action_logprobs(model, sequences, mask, 3)
    (fast * mask[:, -3:]).sum().backward()
    fast_grads = _grads(model)
    model.zero_grad()
    logits = model(input_ids=sequences, attention_mask=mask, position_ids=position_ids(mask)).logits.float()
    plain = logits.log_softmax(-1)[:, -4:-1].gather(-1, sequences[:, -3:, None]).squeeze(-1)
    (plain * mask[:, -3:]).sum().backward()
    assert torch.allclose(fast * mask[:, -3:], plain * mask[:, -3:], atol=1e-5)
    assert torch.allclose(fast_grads, _grads(model), atol=1e-5)


def test_compile_reaches_the_bodies_the_losses_call():
    """train.compile compiles what lm_parts hands the losses (the policy's body, a score model's body):
    block by block where a body repeats its layers, whole where it has one."""
    from instructgpt.models.parts import lm_parts
    from instructgpt.train.compile import compile_decoders
    policy = _llama(60)
    critic = _critic(layers=1)
    pair = torch.nn.ModuleDict({"policy": policy, "value": critic})
    assert compile_decoders(pair) == 2
    body = lm_parts(policy)[0]
    assert len(body.layers) == 2 and all(layer._compiled_call_impl is not None for layer in body.layers)
    assert body._compiled_call_impl is None                              # regional: not the body around them
    assert critic.model._compiled_call_impl is not None                  # one layer: the body whole


def test_training_forwards_build_no_kv_cache(monkeypatch, tokenizer, tmp_path):
    """fit runs every model it trains with use_cache off (a policy and a value model together), so
    the losses build no KV cache: work a training step throws away, whose per-layer state would make
    every compiled layer compile again. It turns use_cache back on for the saved model."""
    import transformers.cache_utils as cache_utils
    from instructgpt.config import OptimConfig, TrainConfig
    from instructgpt.data.lm import LMBatch
    from instructgpt.models.parts import action_logprobs
    from instructgpt.models.reward import token_scores
    from instructgpt.stages.pretrain import _clm_step
    from instructgpt.train import fit
    from instructgpt.utils.logging import MetricsLogger

    def no_cache(*args, **kwargs):
        raise AssertionError("a training forward built a KV cache")
    monkeypatch.setattr(cache_utils.DynamicCache, "__init__", no_cache)
    policy, critic = _llama(len(tokenizer)), _critic(layers=2)
    ids = torch.randint(1, 60, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0                                                      # left padding: the unpadded path
    examples = [encode_chat(tokenizer, [{"role": "user", "content": f"question {i}"},
                                        {"role": "assistant", "content": "answer " * (1 + i)}]) for i in range(3)]
    cfg = SFTConfig(packing=True, train={"batch_size": 2, "seq_len": 64})
    [batch] = sft.build_step([[("a", i) for i in range(3)]], {"a": examples}, {"a": 0}, cfg, tokenizer.pad_token_id)
    seen = {}

    def step_fn(pair, _):
        seen["loss"], _ = _clm_step(pair["policy"], LMBatch(ids, ids.clone()))
        seen["logp"], _ = action_logprobs(pair["policy"], ids, mask, 3)
        seen["values"] = token_scores(pair["value"], ids, mask)
        seen["packed"] = token_scores(pair["value"], ids, mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0))
        seen["sft"] = sft.sft_step(pair["policy"], batch)[0]
        return seen["loss"] + seen["sft"] + seen["values"].mean(), ids.numel()
    train = TrainConfig(max_steps=1, batch_size=3, device="cpu", progress=False, save_every=0)
    logger = MetricsLogger(tmp_path / "m.jsonl")
    fit(torch.nn.ModuleDict({"policy": policy, "value": critic}), step_fn, lambda step: [LMBatch(ids, ids.clone())], train,
        OptimConfig(lr=0.01, warmup_steps=0), tmp_path / "run", logger)
    logger.close()
    loss, logp, values, packed = seen["loss"], seen["logp"], seen["values"], seen["packed"]
    assert loss.isfinite() and logp.shape == (3, 3) and values.shape == packed.shape == (3, 9)
    assert seen["sft"].isfinite()
    assert policy.config.use_cache and critic.config.use_cache          # on again after training


def test_compile_is_skipped_with_a_reason_where_inductor_has_no_cpp_compiler(tmp_path, monkeypatch, capsys):
    """A CPU without a working C++ compiler trains uncompiled and says why (inductor would fail at the first step)."""
    import torch._inductor.config as inductor
    from instructgpt.config import OptimConfig, TrainConfig
    from instructgpt.data.lm import LMBatch
    from instructgpt.objectives import causal_lm_loss
    from instructgpt.train import fit
    from instructgpt.train.compile import compile_blocker
    from instructgpt.utils.logging import MetricsLogger
    monkeypatch.setattr(inductor.cpp, "cxx", (None, str(tmp_path / "no-such-g++")))
    assert "no working C++ compiler" in compile_blocker(torch.device("cpu"))
    model = _llama(60)
    ids = torch.randint(1, 60, (2, 8), generator=torch.Generator().manual_seed(0))
    step_fn = lambda m, b: (causal_lm_loss(m(input_ids=b.input_ids).logits, b.labels)[0], b.input_ids.numel())  # noqa: E731
    cfg = TrainConfig(max_steps=2, batch_size=2, device="cpu", progress=False, save_every=0, compile=True)
    logger = MetricsLogger(tmp_path / "m.jsonl")
    result = fit(model, step_fn, lambda step: [LMBatch(ids, ids.clone())], cfg, OptimConfig(lr=0.01, warmup_steps=0),
                 tmp_path / "run", logger)
    logger.close()
    assert result.step == 2 and model.model._compiled_call_impl is None
    assert "train.compile skipped: no working C++ compiler" in capsys.readouterr().err
