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
