"""The sft stage: a tiny end-to-end run (with LoRA), and any micro-batch split of a step gives
the same gradient through the stage's own batch building."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import write_task_files
from instructgpt.checkpoint import save_hf_folder
from instructgpt.config import ModelConfig, SFTConfig
from instructgpt.models.build import build_model, load_model
from instructgpt.stages import sft
from instructgpt.tokenizer.chat import encode_chat

TASKS = {
    "parity": ("classification", "numbers", "accuracy", ["Is the number even or odd?"], ["even", "odd"],
               [(str(n), "even" if n % 2 == 0 else "odd") for n in range(40)]),
    "echo": ("rewrite", "copy", "exact_match", ["Repeat the word."], None,
             [(w, w) for w in "red green blue black white brown pink gray gold teal".split() * 3]),
    "shout": ("rewrite", "loud", "exact_match", ["Write the word in capitals."], None,
              [(w, w.upper()) for w in "cat dog cow pig hen fox owl bee ant elk".split() * 3]),
}


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    write_task_files(folder, TASKS)
    return folder


@pytest.fixture(scope="module")
def start_model(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="tiny"), tokenizer)
    out = tmp_path_factory.mktemp("start") / "model"
    save_hf_folder(out, model, tokenizer, "")
    return out


def config(task_files, start_model, out, **overrides) -> SFTConfig:
    base = dict(out=str(out), model={"path": str(start_model)},
                tasks={"builtin": False, "files": [str(task_files)], "held_out_clusters": ["loud"],
                       "n_val": 4, "n_test": 6},
                optim={"lr": 3e-3, "warmup_steps": 2},
                train={"max_steps": 6, "batch_size": 4, "seq_len": 64, "eval_every": 3, "save_every": 3,
                       "log_every": 1, "progress": False},
                eval={"samples_per_task": 2, "max_new_tokens": 6})
    return SFTConfig.model_validate({**base, **overrides})


def test_sft_with_lora_writes_adapter_merged_folder_scores_and_task_metadata(task_files, start_model, tmp_path):
    out = tmp_path / "sft"
    cfg = config(task_files, start_model, out, lora={"enabled": True, "r": 4, "alpha": 8,
                                                      "target_modules": ["q_proj", "v_proj"]})
    sft.run(cfg)
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["test"]) == set(scores["baseline"]) == set(TASKS)
    assert all(0.0 <= v <= 1.0 for v in scores["test"].values())
    meta = json.loads((out / "tasks.json").read_text())
    assert meta["parity"]["labels"] == ["even", "odd"] and meta["shout"]["held_out"] is True
    metrics = [json.loads(line) for line in (tmp_path / "metrics" / "sft.jsonl").read_text().splitlines()]
    assert any("eval/parity/accuracy" in m for m in metrics) and any("train/loss" in m for m in metrics)
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "complete.json").is_file()

    from peft import PeftModel
    merged = load_model(out).eval()
    adapted = PeftModel.from_pretrained(load_model(start_model), out / "adapter").eval()
    ids = torch.tensor([[5, 17, 99, 300, 42]])
    assert torch.allclose(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-4)
    base = load_model(start_model).eval()
    assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4)


def test_held_out_tasks_are_never_trained_on(task_files, start_model, tmp_path):
    from instructgpt.data.sft import load_task_data
    cfg = config(task_files, start_model, tmp_path / "sft", train={"max_steps": 20, "batch_size": 4, "seq_len": 64})
    tasks = load_task_data(cfg)
    encoded = {t.name: [([0] * 10, [True] * 10)] * len(t.splits["train"]) for t in tasks if not t.held_out}
    steps = sft.plan_steps(encoded, cfg)
    seen = {task for step in steps for micro in step for task, _ in micro}
    assert seen == {"parity", "echo"}


def test_lm_windows_add_the_corpus_training_text_as_one_more_task(task_files, start_model, tmp_path, tokenizer,
                                                                    corpus_file):
    """`lm_windows`: a task 'corpus' whose examples are the first windows of the corpus's training
    documents (every 50th document, pretraining's validation, left out), each token after a
    window's first carrying loss; the mixture draws it like any task."""
    from instructgpt.config import UserError
    from instructgpt.data.sft import load_task_data
    cfg = config(task_files, start_model, tmp_path / "sft", lm_windows=80, lm_window=64, lm_corpus=[str(corpus_file)])
    encoded = {t.name: [([0] * 10, [True] * 10)] * len(t.splits["train"]) for t in load_task_data(cfg)
               if not t.held_out}
    windows = sft._corpus_examples(cfg, tokenizer, encoded, tmp_path / "sft")
    paragraphs = corpus_file.read_text().split("\n\n")
    train_text = [tokenizer.encode(p, add_special_tokens=False) + [tokenizer.eos_token_id]
                  for i, p in enumerate(paragraphs) if i % 50 != 49]
    flat = [t for ids in train_text for t in ids]
    assert sum(map(len, train_text[:49])) < 80 * 64 <= len(flat)  # the windows reach past document 49 (validation)
    assert [ids for ids, _ in windows] == [flat[i * 64:(i + 1) * 64] for i in range(80)]
    assert all(all(mask) for _, mask in windows)
    steps = sft.plan_steps({**encoded, sft.CORPUS_TASK: windows}, cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"max_steps": 20})}))
    assert sft.CORPUS_TASK in {task for step in steps for micro in step for task, _ in micro}
    with pytest.raises(UserError, match="lm_corpus names no corpus file"):
        sft._corpus_examples(cfg.model_copy(update={"lm_corpus": []}), tokenizer, encoded, tmp_path / "sft")


@pytest.mark.parametrize("reduction", ["task_balanced", "token_mean", "example_mean"])
@pytest.mark.parametrize("packing", [True, False])
def test_any_micro_batch_split_gives_the_same_gradient(tokenizer, reduction, packing):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4))
    examples = [encode_chat(tokenizer, [{"role": "user", "content": f"question {i} " * (1 + i % 3)},
                                        {"role": "assistant", "content": "answer " * (1 + i % 4)}])
                for i in range(8)]
    encoded = {"a": examples[:5], "b": examples[5:]}
    keys = [("a", 0), ("b", 0), ("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2), ("a", 4)]
    cfg = SFTConfig(reduction=reduction, packing=packing, train={"batch_size": 8, "seq_len": 64})
    grads = []
    for per_micro in (8, 4, 1):
        step = [keys[i:i + per_micro] for i in range(0, 8, per_micro)]
        model.zero_grad()
        for batch in sft.build_step(step, encoded, {"a": 0, "b": 1}, cfg, tokenizer.pad_token_id):
            loss, _ = sft.sft_step(model, batch)
            loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and torch.allclose(grads[0], grads[2], atol=1e-6)
