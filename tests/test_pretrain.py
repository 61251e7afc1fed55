"""Pretraining: CLM learns, a SIGKILLed run resumes to the same weights, MLM learns and reloads."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from instructgpt.config import PretrainConfig, load_config
from instructgpt.stages import pretrain
from instructgpt.utils.logging import read_metrics

FAST = ["model.preset=tiny", "train.batch_size=4", "train.seq_len=32", "train.log_every=1", "train.progress=false"]


def cfg_for(tmp_path, name, tokenizer_dir, corpus_file, *extra, base="pretrain/tiny") -> PretrainConfig:
    return load_config(PretrainConfig, base, [f"out={tmp_path / name}", f"tokenizer={tokenizer_dir}",
                                              f"corpus=[{corpus_file}]", *FAST, *extra])


def test_clm_learns_below_unigram_entropy(tmp_path, tokenizer_dir, corpus_file):
    cfg = cfg_for(tmp_path, "clm", tokenizer_dir, corpus_file, "train.max_steps=60", "train.eval_every=20",
                  "train.batch_size=8", "train.seq_len=64", "optim.warmup_steps=5")
    out = pretrain.run(cfg)
    done = json.loads((out / "complete.json").read_text())
    assert done["val_loss"] < done["unigram_entropy"]
    evals = [r["val/loss"] for r in read_metrics(tmp_path / "metrics" / "clm.jsonl") if "val/loss" in r]
    assert len(evals) == 3 and evals[-1] < evals[0]
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("The capital of", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3


def cli(*args):
    return [sys.executable, "-m", "instructgpt", "pretrain", "pretrain/tiny", *args]


def test_sigkill_mid_step_then_resume_equals_uninterrupted(tmp_path, tokenizer_dir, corpus_file):
    # fp32 pinned: `auto` times a product in each process, and a busy machine can tip one run to bf16
    common = [f"tokenizer={tokenizer_dir}", f"corpus=[{corpus_file}]", *FAST, "train.max_steps=30",
              "train.save_every=5", "train.eval_every=0", "train.keep_checkpoints=3", "train.precision=fp32"]
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    straight = subprocess.run(cli(f"out={tmp_path / 'a'}", *common), capture_output=True, text=True, env=env)
    assert straight.returncode == 0, straight.stderr

    proc = subprocess.Popen(cli(f"out={tmp_path / 'b'}", *common), stderr=subprocess.PIPE, env=env)
    metrics = tmp_path / "metrics" / "b.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until past the step-10 checkpoint, then kill mid-step
        rows = read_metrics(metrics) if metrics.exists() else []
        if rows and rows[-1]["step"] >= 12:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "b" / "complete.json").exists()
    killed_at = read_metrics(metrics)[-1]["step"]
    assert 12 <= killed_at < 30

    resumed = subprocess.run(cli(f"out={tmp_path / 'b'}", *common, "--resume"), capture_output=True,
                             text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key]), key
    steps = [r["step"] for r in read_metrics(metrics) if "train/loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # the log was rewound, not duplicated


def test_a_resumed_run_keeps_the_precision_auto_chose_at_the_start(tmp_path, tokenizer_dir, corpus_file,
                                                                   monkeypatch, capsys):
    from instructgpt.train import loop
    cfg = cfg_for(tmp_path, "p", tokenizer_dir, corpus_file, "train.max_steps=4", "train.save_every=2",
                  "train.eval_every=0")
    assert cfg.train.precision == "auto"
    monkeypatch.setattr(loop, "resolve_precision", lambda device, precision: "bf16" if precision == "auto" else precision)
    pretrain.run(cfg)
    (tmp_path / "p" / "complete.json").unlink()
    # later the machine is busy and the timing says fp32: the resumed run still trains in bf16
    monkeypatch.setattr(loop, "resolve_precision", lambda device, precision: "fp32" if precision == "auto" else precision)
    capsys.readouterr()
    pretrain.run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 6})}), resume=True)
    assert "resumed from" in (err := capsys.readouterr().err) and "(step 4, precision bf16)" in err, err


def test_mlm_lowers_masked_loss_and_reloads(tmp_path, tokenizer_dir, corpus_file):
    cfg = cfg_for(tmp_path, "mlm", tokenizer_dir, corpus_file, "train.max_steps=40", "train.eval_every=10",
                  "train.batch_size=8", "train.seq_len=64", "optim.warmup_steps=5", base="pretrain/tiny_mlm")
    out = pretrain.run(cfg)
    evals = [r["val/loss"] for r in read_metrics(tmp_path / "metrics" / "mlm.jsonl") if "val/loss" in r]
    assert len(evals) == 4 and evals[-1] < evals[0] - 0.5
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    model = AutoModelForMaskedLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.mask_token == "<|mask|>"
    ckpt = load_file(tmp_path / "mlm" / "checkpoints" / "step-40" / "model.safetensors")
    reloaded = model.state_dict()
    for key, value in ckpt.items():
        assert torch.equal(value, reloaded[key]), key


def test_objective_and_arch_must_agree(tmp_path, tokenizer_dir, corpus_file):
    from instructgpt.config import UserError
    with pytest.raises(UserError, match="model.arch=bert"):
        pretrain.run(cfg_for(tmp_path, "x", tokenizer_dir, corpus_file, "objective=mlm"))


def test_clm_step_through_chunked_head_equals_full_logits_loss():
    """The pretraining step's chunked head + cross-entropy gives the loss and gradients of
    `causal_lm_loss` on the full logits."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from instructgpt.data.lm import LMBatch
    from instructgpt.objectives import causal_lm_loss
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=128, tie_word_embeddings=False))
    ids = torch.randint(0, 300, (3, 17))
    loss, tokens = pretrain._clm_step(model, LMBatch(ids, ids.clone()))
    loss.backward()
    chunked = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full, _ = causal_lm_loss(model(input_ids=ids).logits, ids)
    full.backward()
    assert tokens == ids.numel()
    assert torch.allclose(loss, full, rtol=1e-5)
    for a, b in zip(chunked, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-5)

