"""The RLHF stages end to end on a tiny random model: comparisons -> reward -> ppo / ppo-ptx -> dpo."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import write_task_files
from instructgpt.checkpoint import save_hf_folder
from instructgpt.config import ComparisonsConfig, DPOConfig, ModelConfig, PPOConfig, RewardConfig, TasksConfig
from instructgpt.data.comparisons import load_comparisons
from instructgpt.models.build import build_model
from instructgpt.models.reward import load_score_model
from instructgpt.stages import comparisons, dpo, ppo, reward, tasks

TASKS = {
    "parity": ("classification", "numbers", "accuracy", ["Is the number even or odd?"], ["even", "odd"],
               [(str(n), "even" if n % 2 == 0 else "odd") for n in range(60)]),
    "plus": ("arithmetic", "sums", "numeric", ["Add the two numbers."], None,
             [(f"{a} {b}", str(a + b)) for a in range(6) for b in range(10)]),
}
TRAIN = {"log_every": 1, "save_every": 2, "progress": False}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer, corpus_file):
    root = tmp_path_factory.mktemp("rl")
    files = root / "task_files"
    write_task_files(files, TASKS)
    tasks.run(TasksConfig(out=str(root / "tasks"), builtin=False, files=[str(files)], held_out_clusters=[],
                          n_train=30, n_val=8, n_test=6, corpus_mb=0))
    torch.manual_seed(0)
    save_hf_folder(root / "sft", build_model(ModelConfig(preset="tiny"), tokenizer), tokenizer, "")
    return root


@pytest.fixture(scope="module")
def ranked(run_dir):
    out = run_dir / "comparisons.jsonl"
    comparisons.run(ComparisonsConfig(out=str(out), model={"path": str(run_dir / "sft")},
                                      tasks_dir=str(run_dir / "tasks"), k=4, prompts_per_task=12,
                                      heldout_prompts_per_task=6, max_new_tokens=5, temperature=1.5))
    return out


def test_comparisons_write_rankings_for_both_labelers_and_the_oracle(run_dir, ranked):
    stats = json.loads((run_dir / "comparisons.json").read_text())
    assert stats["train"]["prompts"] > 10 and stats["heldout"]["labeler"] == "heldout"
    assert abs(stats["train"]["agreement_with_oracle"] - 0.75) < 0.1
    train = load_comparisons(ranked)
    assert all(2 <= len(c.completions) <= 4 and c.task in TASKS and c.reference for c in train)
    heldout = load_comparisons(run_dir / "comparisons-heldout.jsonl")
    oracle = load_comparisons(run_dir / "comparisons-oracle.jsonl")
    assert [c.completions for c in heldout] == [c.completions for c in oracle]


def test_reward_model_trains_on_rankings_and_centres_the_demonstrations(run_dir, ranked):
    out = run_dir / "rm"
    reward.run(RewardConfig(out=str(out), model={"path": str(run_dir / "sft")}, data=[{"path": str(ranked)}],
                            eval_data=[{"path": str(run_dir / "comparisons-oracle.jsonl")}], max_len=64,
                            train={"max_steps": 4, "batch_size": 4, "eval_every": 2, **TRAIN}))
    scores = json.loads((out / "scores.json").read_text())
    assert 0.0 <= scores["rm/accuracy/comparisons-oracle"] <= 1.0
    rm = load_score_model(out)
    assert rm.config.reward_bias == scores["reward_bias"]
    from instructgpt.stages.judge import reward_of
    from instructgpt.tokenizer.train import load_tokenizer
    train = load_comparisons(ranked)
    demo = reward_of(rm, load_tokenizer(out), [c.prompt for c in train], [c.reference for c in train], 64)
    assert abs(sum(demo) / len(demo)) < 1e-4  # the bias puts the references' mean score at 0


def test_ppo_and_ppo_ptx_train_log_and_judge(run_dir, ranked, corpus_file):
    if not (run_dir / "rm" / "complete.json").is_file():
        test_reward_model_trains_on_rankings_and_centres_the_demonstrations(run_dir, ranked)
    for name, ptx in (("ppo", 0.0), ("ppo-ptx", 1.0)):
        out = run_dir / name
        ppo.run(PPOConfig(out=str(out), model={"path": str(run_dir / "sft")}, reward_model=str(run_dir / "rm"),
                          tasks_dir=str(run_dir / "tasks"), rollout_batch=8, minibatches=2, max_new_tokens=6,
                          ptx_coef=ptx, ptx_corpus=[str(corpus_file)] if ptx else [], ptx_seq_len=32,
                          adaptive_kl=True, normalize_reward=True, judge={"prompts_per_task": 3, "max_new_tokens": 6},
                          optim={"lr": 1e-3, "warmup_steps": 0}, train={"max_steps": 4, "batch_size": 2, **TRAIN}))
        metrics = [json.loads(line) for line in (run_dir / "metrics" / f"{name}.jsonl").read_text().splitlines()]
        keys = set().union(*metrics)
        for key in ("ppo/reward", "ppo/kl", "ppo/entropy", "ppo/response_length", "ppo/clip_fraction",
                    "ppo/value_loss", "ppo/explained_variance", "ppo/time_generate_s", "ppo/time_learn_s", "ppo/beta"):
            assert key in keys, key
        assert ("ppo/ptx_loss" in keys) == bool(ptx)
        report = json.loads((out / "scores.json").read_text())
        assert 0 <= report["win_rate"] <= 1 and "task_score" in report and "reward" in report
        assert (out / "complete.json").is_file() and (out / "config.json").is_file()


def test_dpo_and_ipo(run_dir, ranked):
    for loss in ("dpo", "ipo"):
        out = run_dir / loss
        dpo.run(DPOConfig(out=str(out), model={"path": str(run_dir / "sft")}, data=[{"path": str(ranked)}],
                          tasks_dir=str(run_dir / "tasks"), loss=loss, pairs="best", max_len=64,
                          judge={"prompts_per_task": 2, "max_new_tokens": 4},
                          optim={"lr": 1e-3, "warmup_steps": 0}, train={"max_steps": 3, "batch_size": 4, **TRAIN}))
        metrics = [json.loads(line) for line in (run_dir / "metrics" / f"{loss}.jsonl").read_text().splitlines()]
        assert metrics[-1]["step"] == 3 and (out / "complete.json").is_file()
        assert "win_rate" in json.loads((out / "scores.json").read_text())


def _grads(model, losses_and_divisor):
    model.zero_grad()
    losses, divisor = losses_and_divisor
    for loss in losses:
        (loss / divisor).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_reward_and_dpo_steps_give_the_same_gradient_for_any_micro_batch_split(run_dir, ranked, tokenizer):
    from instructgpt.data.preference import reward_batch
    from instructgpt.models.build import load_model
    from instructgpt.stages.dpo import pair_batch, load_pairs, reference_logprobs, sequence_logprobs
    from instructgpt.objectives.dpo import dpo_loss
    data = load_comparisons(ranked)[:4]
    rm = load_score_model(run_dir / "sft", new_head=True)
    torch.nn.init.normal_(rm.score.weight, std=0.1)
    pad = tokenizer.pad_token_id
    grads = []
    for size in (4, 2, 1):
        batches = [reward_batch(data[i:i + size], tokenizer, 64, pad, i) for i in range(0, 4, size)]
        losses = [reward.reward_step(rm, b)[0] for b in batches]
        grads.append(_grads(rm, (losses, sum(b.num_loss_tokens for b in batches))))
    assert all(torch.allclose(grads[0], g, atol=1e-6) for g in grads[1:])

    policy = load_model(run_dir / "sft")
    pairs = load_pairs(DPOConfig(data=[{"path": str(ranked)}], max_len=64), tokenizer)[:4]
    ref = reference_logprobs(policy, pairs, pad)
    grads = []
    for size in (4, 1):
        losses = []
        for i in range(0, 4, size):
            b = pair_batch(pairs[i:i + size], ref[i:i + size], pad)
            lp = sequence_logprobs(policy, b.sequences)
            P = b.num_loss_tokens
            losses.append(dpo_loss(lp[:P], lp[P:], b.ref_logprobs[:P], b.ref_logprobs[P:], 0.1)[0])
        grads.append(_grads(policy, (losses, 4)))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_ppo_ptx_trains_on_the_pretraining_training_documents_only(tmp_path, tokenizer, tokenizer_dir, corpus_file):
    """PPO-ptx leaves out the documents pretraining held out for validation (the eval's LM NLL reads
    them): its shard is pretraining's training shard. With 0.01, as before, it trained on half of them."""
    from instructgpt.data.shards import build_shards
    pre, _, _ = build_shards([str(corpus_file)], tokenizer, str(tokenizer_dir), tmp_path / "pre", 0.02, progress=False)
    cfg = PPOConfig(model={"path": str(tokenizer_dir)}, ptx_coef=0.01, ptx_corpus=[str(corpus_file)],
                    train={"progress": False})
    ptx = ppo._ptx_shard(cfg, tokenizer, tmp_path / "ppo")
    assert len(ptx) == len(pre) and (ptx.tokens[:] == pre.tokens[:]).all()


def test_ema_decay_warms_up_so_a_short_run_follows_the_policy():
    from instructgpt.stages.ppo import ema_decay
    assert ema_decay(0.992, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.992, 40) == pytest.approx(41 / 50)
    assert ema_decay(0.992, 10_000) == 0.992
    start_share = 1.0
    for step in range(1, 41):
        start_share *= ema_decay(0.992, step)
    assert start_share < 1e-3 < 0.992 ** 40  # without warm-up 72% of the EMA would still be the start model
