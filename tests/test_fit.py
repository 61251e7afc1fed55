"""fit(): the loss is normalised over the whole step, so any micro-batch split gives the same update."""
import pytest
import torch

from instructgpt.config import OptimConfig, TrainConfig
from instructgpt.data.lm import LMBatch
from instructgpt.objectives import causal_lm_loss
from instructgpt.train import fit
from instructgpt.utils import IGNORE_INDEX
from instructgpt.utils.logging import MetricsLogger, read_metrics


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(32, 16)
        self.out = torch.nn.Linear(16, 32)

    def forward(self, input_ids):
        return self.out(torch.tanh(self.emb(input_ids)))


def data():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32, (8, 12), generator=g)
    labels = ids.clone()
    labels[:3, :9] = IGNORE_INDEX  # unequal loss tokens per sequence: a mean of means would differ
    return ids, labels


def train(tmp_path, split: int, steps: int = 3) -> TinyLM:
    ids, labels = data()
    model = TinyLM()
    per = 8 // split
    batches = lambda step: [LMBatch(ids[i * per:(i + 1) * per], labels[i * per:(i + 1) * per])  # noqa: E731
                            for i in range(split)]
    step_fn = lambda m, b: (causal_lm_loss(m(b.input_ids), b.labels)[0], b.input_ids.numel())  # noqa: E731
    cfg = TrainConfig(max_steps=steps, batch_size=per, grad_accum=split, device="cpu", progress=False,
                      log_every=1, save_every=0, precision="fp32")  # bf16 rounds differently per split
    logger = MetricsLogger(tmp_path / f"m{split}.jsonl")
    fit(model, step_fn, batches, cfg, OptimConfig(lr=0.05, warmup_steps=0), tmp_path / f"run{split}", logger)
    logger.close()
    return model


def test_micro_batch_split_gives_same_weights(tmp_path):
    one, two, eight = train(tmp_path, 1), train(tmp_path, 2), train(tmp_path, 8)
    for a, b, c in zip(one.parameters(), two.parameters(), eight.parameters()):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "m1.jsonl")]
    assert losses == pytest.approx([r["train/loss"] for r in read_metrics(tmp_path / "m8.jsonl")], abs=1e-5)
    assert losses[-1] < losses[0]


def test_step_statistics_are_summed_over_micro_batches_and_logged_by_after_step(tmp_path):
    ids, labels = data()
    batches = lambda step: [LMBatch(ids[i * 2:(i + 1) * 2], labels[i * 2:(i + 1) * 2]) for i in range(4)]  # noqa: E731

    def step_fn(m, b):
        loss, n = causal_lm_loss(m(b.input_ids), b.labels)
        return loss, b.input_ids.numel(), {"rows": b.input_ids.size(0), "loss_tokens": n}

    seen = []

    def after_step(step, sums):
        seen.append((step, sums))
        return {"test/rows_per_token": sums["rows"] / sums["loss_tokens"]}

    cfg = TrainConfig(max_steps=2, batch_size=2, grad_accum=4, device="cpu", progress=False, log_every=1, save_every=0)
    logger = MetricsLogger(tmp_path / "m.jsonl")
    fit(TinyLM(), step_fn, batches, cfg, OptimConfig(lr=0.05, warmup_steps=0), tmp_path / "run", logger,
        after_step=after_step)
    logger.close()
    tokens = int((labels[:, 1:] != IGNORE_INDEX).sum())
    assert seen == [(1, {"rows": 8.0, "loss_tokens": float(tokens)}), (2, {"rows": 8.0, "loss_tokens": float(tokens)})]
    logged = [r["test/rows_per_token"] for r in read_metrics(tmp_path / "m.jsonl")]
    assert logged == pytest.approx([8 / tokens] * 2)


def test_a_swallowed_ctrl_c_still_stops_training_at_the_next_step():
    """Python loses a KeyboardInterrupt raised inside __del__; the remembered request is not lost."""
    import pytest
    from instructgpt.utils import interrupt
    interrupt.reset()
    try:
        interrupt.handle_sigint(2, None)
    except KeyboardInterrupt:
        pass  # swallowed, as in a __del__
    with pytest.raises(KeyboardInterrupt):
        interrupt.check()
    interrupt.reset()
    interrupt.check()  # cleared: nothing raised


def nan_at(steps: set[int], tmp_path, max_steps: int, max_bad: int = 3):
    """Train TinyLM with a loss that is NaN at optimizer steps `steps` (1-based); returns weights
    after every step, the fit result (or the error) and the logged metrics."""
    from dataclasses import dataclass
    from instructgpt.config import UserError

    @dataclass
    class TaskBatch(LMBatch):
        tasks: tuple = ("parity", "colour")

    ids, labels = data()
    model, seen, calls = TinyLM(), [], []

    def step_fn(m, b):
        calls.append(1)
        loss = causal_lm_loss(m(b.input_ids), b.labels)[0]
        return (loss * float("nan") if len(calls) in steps else loss), b.input_ids.numel()

    def after_step(step, sums):
        seen.append([p.detach().clone() for p in model.parameters()])
        return {}

    cfg = TrainConfig(max_steps=max_steps, batch_size=8, device="cpu", progress=False, log_every=1, save_every=1,
                      max_bad_steps=max_bad)
    logger = MetricsLogger(tmp_path / "m.jsonl")
    try:
        result = fit(model, step_fn, lambda step: [TaskBatch(ids, labels)], cfg, OptimConfig(lr=0.05, warmup_steps=0),
                     tmp_path / "run", logger, after_step=after_step)
    except UserError as e:
        result = e
    logger.close()
    return seen, result, read_metrics(tmp_path / "m.jsonl")


def test_a_non_finite_step_is_skipped_and_counted(tmp_path):
    seen, result, metrics = nan_at({2}, tmp_path, 4)
    assert result.skipped_steps == 1 and result.step == 4
    assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[1]))       # step 2 changed nothing
    assert not all(torch.equal(a, b) for a, b in zip(seen[1], seen[2]))   # step 3 trained again
    assert [r["train/skipped_steps"] for r in metrics] == [0, 1, 1, 1]
    assert all(torch.isfinite(p).all() for p in seen[-1])
    # the skipped step's loss is logged as null: the metrics file stays strict JSON
    assert metrics[1]["train/loss"] is None and "NaN" not in (tmp_path / "m.jsonl").read_text()


def test_non_finite_steps_in_a_row_stop_naming_the_step_and_tasks_and_keep_the_good_checkpoint(tmp_path):
    from instructgpt.checkpoint import latest_checkpoint
    _, error, _ = nan_at({2, 3, 4, 5}, tmp_path, 8, max_bad=3)
    message = str(error)
    assert "3 steps in a row had a non-finite loss or gradient, the last step 4 (tasks: colour, parity)" in message
    assert f"The last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'step-1'}" in message
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-1"


@pytest.mark.parametrize("setting, seq_len, during", [("auto", 256, "eager"), ("auto", 512, "sdpa"),
                                                      ("sdpa", 256, "sdpa"), ("eager", 1024, "eager")])
def test_attention_kernel_while_training_and_restored_after(tmp_path, setting, seq_len, during):
    """On a CPU `auto` trains short sequences with eager attention (faster there) and longer ones
    with the model's own; either way the model leaves fit() with the implementation it came with."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=64, attn_implementation="sdpa"))
    ids, labels = data()
    seen = []

    def step_fn(m, b):
        seen.append(m.config._attn_implementation)
        return causal_lm_loss(m(input_ids=b.input_ids).logits, b.labels)[0], b.input_ids.numel()

    cfg = TrainConfig(max_steps=2, batch_size=8, seq_len=seq_len, attention=setting, device="cpu", progress=False,
                      save_every=0)
    logger = MetricsLogger(tmp_path / "m.jsonl")
    fit(model, step_fn, lambda step: [LMBatch(ids, labels)], cfg, OptimConfig(lr=0.01, warmup_steps=0),
        tmp_path / "run", logger)
    logger.close()
    assert seen == [during, during]
    assert model.config._attn_implementation == "sdpa"


def test_the_optimizer_uses_the_fused_adamw_kernel_where_it_applies():
    from instructgpt.train.optim import build_optimizer
    model = TinyLM()
    optimizer = build_optimizer(model, OptimConfig(lr=1e-3))
    assert optimizer.defaults["fused"] is True
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    optimizer.step()  # the fused kernel runs on these CPU tensors
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    lone = torch.nn.Parameter(torch.zeros(2, device="meta"))
    holder = torch.nn.Module()
    holder.w = lone
    assert not build_optimizer(holder, OptimConfig(lr=1e-3)).defaults["fused"]  # no kernel for 'meta'
