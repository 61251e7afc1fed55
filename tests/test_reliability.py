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
