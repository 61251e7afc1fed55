"""Records, token shards and MLM masking."""
import json

import numpy as np
import pytest
import torch

from instructgpt.config import UserError
from instructgpt.data.lm import mask_tokens, step_rng
from instructgpt.data.records import iter_documents, iter_jsonl
from instructgpt.data.shards import load_shards, unigram_entropy, write_shards
from instructgpt.utils import IGNORE_INDEX


def test_jsonl_errors_name_file_and_line(tmp_path):
    f = tmp_path / "sft.jsonl"
    f.write_text('{"text": "ok"}\n\n{"text": oops}\n')
    with pytest.raises(UserError, match=rf"{f}:3: invalid JSON"):
        list(iter_jsonl(f))
    g = tmp_path / "p.jsonl"
    g.write_text('{"text": "a"}\n{"prompt": "x", "answer": "y"}\n')
    with pytest.raises(UserError, match=rf'{g}:2: field "text" is missing \(found: prompt, answer\)'):
        list(iter_documents([g]))


def test_documents_from_txt_paragraphs_and_records(tmp_path):
    t = tmp_path / "c.txt"
    t.write_text("one\ntwo\n\n\nthree\n")
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    assert list(iter_documents([t, j])) == ["one\ntwo", "three", "p\nc"]


def test_unigram_entropy_by_hand():
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2
    assert unigram_entropy(np.array([2, 1, 1, 0])) == pytest.approx(1.5 * np.log(2))


def test_shards_round_trip_and_split(tmp_path, tokenizer):
    docs = [f"Document number {i} says hello." for i in range(100)]
    meta = write_shards(iter(docs), tokenizer, tmp_path / "shards", val_fraction=0.1)
    train, val, loaded = load_shards(tmp_path / "shards")
    assert loaded == meta and meta["documents"] == 100
    assert isinstance(train.tokens, np.memmap) and train.tokens.dtype == np.uint16
    eos = tokenizer.eos_token_id
    assert int((val.tokens == eos).sum()) == 10 and int((train.tokens == eos).sum()) == 90
    # every 10th document went to validation, in order, and decodes back
    first_val = val.tokens[:list(val.tokens).index(eos)]
    assert tokenizer.decode(first_val) == docs[9]
    assert len(train) + len(val) == meta["train_tokens"] + meta["val_tokens"]
    windows = train.random_windows(step_rng(0, 5, 0), 3, 8)
    assert windows.shape == (3, 8)
    assert np.array_equal(windows, train.random_windows(step_rng(0, 5, 0), 3, 8))


def test_mask_tokens_80_10_10():
    ids = torch.randint(10, 1000, (64, 256))
    ids[:, 0] = 1  # a special token is never picked
    batch = mask_tokens(ids, np.random.default_rng(0), mask_id=5, vocab_size=1000, special_ids=[1])
    picked = batch.labels != IGNORE_INDEX
    assert not picked[:, 0].any()
    rate = picked.float().mean().item()
    assert 0.14 < rate < 0.16
    assert torch.equal(batch.labels[picked], ids[picked])
    masked = (batch.input_ids == 5) & picked
    kept = (batch.input_ids == ids) & picked
    assert 0.77 < masked.sum() / picked.sum() < 0.83
    assert 0.08 < kept.sum() / picked.sum() < 0.13  # 10% kept (+ random draws that hit the same id)
    assert torch.equal(batch.input_ids[~picked], ids[~picked])
