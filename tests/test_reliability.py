"""Output problems: an output folder that cannot be written fails before any work; a full disk at
a checkpoint or at the final folder is a clear error that leaves nothing looking complete."""
from __future__ import annotations

import errno

import pytest
import torch

from instructgpt.config import UserError


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_unwritable_output_folder_fails_before_any_work(tmp_path, tokenizer_dir, corpus_file):
    from instructgpt.config import PretrainConfig
    from instructgpt.stages import pretrain
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = PretrainConfig(out=str(blocker / "pretrain"), tokenizer=str(tokenizer_dir), corpus=[str(corpus_file)])
    with pytest.raises(UserError, match=r"a-file/pretrain: cannot write the output there \(Not a directory\); key out"):
        pretrain.run(cfg)
    assert blocker.read_text() == "not a folder"


def test_the_whole_recipe_refuses_an_unwritable_runs_dir_before_any_stage(tmp_path, capsys):
    from instructgpt.cli import main
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "run/demo", f"runs_dir={blocker / 'runs'}"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {blocker / 'runs' / 'demo'}: cannot write the output there "
                                               f"(Not a directory); key runs_dir: choose another folder or fix its "
                                               f"permissions")


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_leaves_no_partial_folder(tmp_path, monkeypatch):
    from instructgpt.checkpoint import store
    from instructgpt.config import OptimConfig, TrainConfig
    from instructgpt.data.lm import LMBatch
    from instructgpt.objectives import causal_lm_loss
    from instructgpt.train import fit
    from instructgpt.utils.logging import MetricsLogger
    ids = torch.randint(0, 16, (4, 8), generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Linear(8, 16))
    step_fn = lambda m, b: (causal_lm_loss(m(b.input_ids), b.labels)[0], b.input_ids.numel())  # noqa: E731
    real_save = store.save_model
    calls = []

    def save_then_fill_the_disk(*args, **kwargs):
        calls.append(1)
        return real_save(*args, **kwargs) if len(calls) == 1 else disk_full()

    monkeypatch.setattr(store, "save_model", save_then_fill_the_disk)
    cfg = TrainConfig(max_steps=4, batch_size=4, device="cpu", progress=False, save_every=2)
    with pytest.raises(UserError) as e:
        fit(model, step_fn, lambda step: [LMBatch(ids, ids.clone())], cfg, OptimConfig(lr=0.01), tmp_path / "run",
            MetricsLogger(tmp_path / "m.jsonl"))
    root = tmp_path / "run" / "checkpoints"
    assert str(e.value) == (f"could not write checkpoint step-4 in {root} (No space left on device); the previous "
                            f"checkpoint ({root / 'step-2'}) stays. Free space and rerun with --resume")
    assert sorted(p.name for p in root.iterdir()) == ["step-2"]  # no half-written step-4, no temp folder


def test_a_full_disk_at_the_final_folder_never_leaves_it_marked_complete(tmp_path, chat_model_dir):
    from instructgpt.checkpoint import is_complete, mark_complete, save_hf_folder
    from instructgpt.models.build import load_model
    out = tmp_path / "sft"
    model = load_model(chat_model_dir)
    save_hf_folder(out, model, None, "")
    mark_complete(out)
    model.save_pretrained = disk_full
    with pytest.raises(UserError, match="could not write the model folder \\(No space left on device\\); it is not "
                                        "marked complete"):
        save_hf_folder(out, model, None, "")
    assert not is_complete(out) and not list(out.glob(".final.tmp-*"))


# ---- misuse: each a one-line error ------------------------------------------------------------

@pytest.fixture(scope="module")
def rankings(tmp_path_factory):
    import json
    path = tmp_path_factory.mktemp("rank") / "rankings.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say {w}.", "completions": [w, w.upper()], "ranking": [0, 1]}) + "\n"
                            for w in ("yes", "no", "maybe")))
    return path


def test_a_tokenizer_from_another_model_is_refused(tmp_path, chat_model_dir, corpus_file, rankings):
    from instructgpt.config import DPOConfig, TokenizerConfig
    from instructgpt.stages import dpo, tokenizer
    bigger = tokenizer.run(TokenizerConfig(out=str(tmp_path / "tok"), files=[str(corpus_file)], vocab_size=1500))
    cfg = DPOConfig(out=str(tmp_path / "dpo"), model={"path": str(chat_model_dir)}, tokenizer=str(bigger),
                    data=[{"path": str(rankings)}])
    with pytest.raises(UserError, match=r"^dpo: .*tok with model .*tiny-chat: the tokenizer has 1,500 tokens but the "
                                        r"model embeds 1,024: they come from different models; key tokenizer"):
        dpo.run(cfg)


def test_a_reward_model_where_a_policy_is_expected_is_refused(tmp_path, chat_model_dir, rankings):
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.config import DPOConfig
    from instructgpt.models.reward import load_score_model
    from instructgpt.stages import dpo
    from instructgpt.tokenizer.train import load_tokenizer
    rm = tmp_path / "rm"
    save_hf_folder(rm, load_score_model(chat_model_dir, new_head=True), None, "")
    with pytest.raises(UserError, match=r"rm: no tokenizer in this folder \(no tokenizer.json\); key tokenizer"):
        dpo.run(DPOConfig(out=str(tmp_path / "dpo"), model={"path": str(rm)}, data=[{"path": str(rankings)}]))
    load_tokenizer(chat_model_dir).save_pretrained(rm)
    with pytest.raises(UserError, match=r"rm: a reward model \(LlamaForSequenceClassification\), not a policy; give a "
                                        r"causal LM folder"):
        dpo.run(DPOConfig(out=str(tmp_path / "dpo"), model={"path": str(rm)}, data=[{"path": str(rankings)}]))


def test_a_gguf_of_an_unsupported_architecture_or_not_gguf_at_all_is_refused(tmp_path):
    import gguf
    import numpy as np
    from instructgpt.models.importer import import_model
    path = tmp_path / "madeup.gguf"
    writer = gguf.GGUFWriter(str(path), "madeup")
    writer.add_tensor("x", np.zeros(4, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UserError, match=r"madeup.gguf: a GGUF of architecture 'madeup', which cannot be imported "
                                        r"\(supported: .*llama.*\)"):
        import_model(str(path), tmp_path / "out")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(UserError, match="junk.gguf: not a readable GGUF file"):
        import_model(str(junk), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- correctness traps ------------------------------------------------------------------------

def tiny_llama(**kw):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=64, pad_token_id=0, **kw)


def test_the_reward_is_read_at_the_last_real_token_under_left_and_right_padding():
    from transformers import LlamaForSequenceClassification
    from instructgpt.models.reward import sequence_rewards
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(tiny_llama(num_labels=1)).eval()
    rows = [[5, 9, 3, 7, 2], [4, 8, 2], [6, 2]]  # 2 = end of text, also a tempting pad id
    alone = torch.stack([sequence_rewards(rm, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0]
                         for r in rows])
    for pad in (0, 2):  # a pad token equal to EOS must not move the read position
        right = torch.full((3, 5), pad)
        left = torch.full((3, 5), pad)
        mask_right, mask_left = torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long)
        for i, r in enumerate(rows):
            right[i, :len(r)], mask_right[i, :len(r)] = torch.tensor(r), 1
            left[i, 5 - len(r):], mask_left[i, 5 - len(r):] = torch.tensor(r), 1
        with torch.no_grad():
            assert torch.allclose(sequence_rewards(rm, right, mask_right), alone, atol=1e-5)
            assert torch.allclose(sequence_rewards(rm, left, mask_left), alone, atol=1e-5)
    assert len(set(alone.tolist())) == 3  # distinct scores: reading the wrong position would show


def test_packed_examples_never_attend_to_each_other():
    """In a packed row, changing the first example's tokens leaves the second's logits unchanged,
    and those equal the second example run alone."""
    from transformers import LlamaForCausalLM
    from instructgpt.data.packing import pack_batch
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama()).eval()
    first, second = ([5, 6, 7, 8, 9], [False, False, True, True, True]), ([10, 11, 12, 13], [False, True, True, True])
    other_first = ([40, 41, 42, 43, 44], first[1])
    outputs = []
    with torch.no_grad():
        for a in (first, other_first):
            batch = pack_batch([a, second], max_len=16, pad_id=0)
            assert batch.input_ids.size(0) == 1  # both in one row
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.position_ids).logits[0]
            outputs.append(logits[(batch.example_index[0] == 1)])
        alone = model(input_ids=torch.tensor([second[0]])).logits[0]
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert torch.allclose(outputs[0], alone, atol=1e-5)


def test_the_end_of_turn_token_carries_loss_and_a_trained_model_stops_by_itself(tmp_path, tokenizer):
    import instructgpt
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.config import ModelConfig, SFTConfig
    from instructgpt.models.build import build_model
    from instructgpt.stages import sft
    from instructgpt.tokenizer.chat import encode_chat
    from conftest import write_task_files
    messages = [{"role": "user", "content": "Repeat: red"}, {"role": "assistant", "content": "red"}]
    ids, mask = encode_chat(tokenizer, messages)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert mask[len(ids) - 1 - ids[::-1].index(end)]  # the assistant's <|im_end|> is in the loss mask
    torch.manual_seed(0)
    save_hf_folder(tmp_path / "start", build_model(ModelConfig(preset="tiny"), tokenizer), tokenizer, "")
    words = "red green blue black white brown pink gray gold teal".split()
    write_task_files(tmp_path / "tasks", {"echo": ("rewrite", "echo", "exact_match", ["Repeat the word."], None,
                                                   [(w, w) for w in words * 3])})
    out = sft.run(SFTConfig.model_validate({
        "out": str(tmp_path / "sft"), "model": {"path": str(tmp_path / "start")},
        "tasks": {"builtin": False, "files": [str(tmp_path / "tasks")], "held_out_clusters": [], "n_val": 2, "n_test": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 5}, "eval": {"samples_per_task": 0, "baseline": False, "max_new_tokens": 4},
        "train": {"max_steps": 60, "batch_size": 8, "seq_len": 64, "save_every": 0, "eval_every": 0,
                  "progress": False}}))
    engine = instructgpt.load(out)
    replies = [engine.chat([{"role": "user", "content": f"Repeat the word.\n\n{w}"}], max_new_tokens=20)
               for w in words[:4]]
    assert all(r.finish_reason == "stop" for r in replies), [(r.text, r.finish_reason) for r in replies]
