"""Comparison records: every shape of DESIGN.md §4, ties, and file:line errors for bad records."""
from __future__ import annotations

import gzip
import json

import pytest
import torch

from conftest import SHARED_DATA
from instructgpt.config import UserError
from instructgpt.data.comparisons import load_comparisons
from instructgpt.data.preference import reward_batch
from instructgpt.utils import IGNORE_INDEX


def write(tmp_path, *records, name="cmp.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_rankings_pairs_and_dialogues(tmp_path):
    path = write(tmp_path,
                 {"prompt": "Add 2 and 3.", "completions": ["4", "5", "five", "6"], "ranking": [1, 2, 0, 3],
                  "task": "addition", "reference": "5"},
                 {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
                 {"chosen": "\n\nHuman: Hi\n\nAssistant: Hey.\n\nHuman: Help?\n\nAssistant: Sure, how?",
                  "rejected": "\n\nHuman: Hi\n\nAssistant: Hey.\n\nHuman: Help?\n\nAssistant: No."},
                 {"prompt": "Q", "completions": ["a", "b", "c"], "ranking": [2, 0, 1], "scores": [0.5, 0.5, 0.9]})
    rank4, pair, dialogue, tied = load_comparisons(path)
    assert rank4.ranks == (2, 0, 1, 3) and rank4.task == "addition" and rank4.reference == "5"
    assert sorted(rank4.pairs("all")) == sorted([(1, 2), (1, 0), (1, 3), (2, 0), (2, 3), (0, 3)])
    assert sorted(rank4.pairs("best")) == [(1, 0), (1, 2), (1, 3)]
    assert pair.completions == ("Hello!", "Go away.") and pair.ranks == (0, 1)
    assert [m["role"] for m in dialogue.prompt] == ["user", "assistant", "user"]
    assert dialogue.completions == ("Sure, how?", "No.")
    assert tied.ranks == (1, 1, 0) and sorted(tied.pairs()) == [(2, 0), (2, 1)]


@pytest.mark.parametrize("record, message", [
    ({"prompt": "Q", "completions": ["only one"], "ranking": [0]}, "K ≥ 2 strings (found 1)"),
    ({"prompt": "Q", "completions": ["a", "b", "c"], "ranking": [0, 0, 1]}, '"ranking" repeats index 0'),
    ({"prompt": "Q", "completions": ["a", "b", "c"], "ranking": [2, 0]}, '"ranking" misses index 1'),
    ({"prompt": "Q", "completions": ["a", "b"], "ranking": [0, 2]}, '"ranking" index 2 is out of range'),
    ({"prompt": "Q", "completions": ["a", " "], "ranking": [0, 1]}, "completions[1] is empty"),
    ({"prompt": "Q", "chosen": "same", "rejected": "same"}, "chosen equals rejected"),
    ({"prompt": "Q", "chosen": "", "rejected": "no"}, "chosen is empty"),
    ({"completions": ["a", "b"], "ranking": [0, 1]}, 'field "prompt" is missing'),
    ({"text": "hi"}, "not a comparison record"),
])
def test_bad_records_name_file_and_line(tmp_path, record, message):
    path = write(tmp_path, {"prompt": "fine", "chosen": "a", "rejected": "b"}, record)
    with pytest.raises(UserError) as e:
        load_comparisons(path)
    assert f"{path}:2:" in str(e.value) and message in str(e.value)
    assert len(load_comparisons(path, skip_invalid=True)) == 1


def test_reward_batch_puts_all_k_completions_of_a_prompt_in_one_tensor(tmp_path, tokenizer):
    path = write(tmp_path, {"prompt": "Add 2 and 3.", "completions": ["4", "5", "6"], "ranking": [1, 0, 2]},
                 {"prompt": "Hi", "chosen": "Hello there", "rejected": "Bye"})
    batch = reward_batch(load_comparisons(path), tokenizer, max_len=64, pad_id=tokenizer.pad_token_id, layout="padded")
    assert batch.sequences.input_ids.shape[0] == 5 and batch.num_loss_tokens == 2
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1] and batch.ranks.tolist() == [1, 0, 2, 0, 1]
    row = batch.sequences.labels[3]
    answer = tokenizer.decode(row[row != IGNORE_INDEX].tolist())
    assert answer == "Hello there<|im_end|>"
    assert torch.equal(batch.sequences.attention_mask.sum(1) > 0, torch.ones(5, dtype=torch.bool))


@pytest.mark.skipif(not (SHARED_DATA / "hh-rlhf").is_dir(), reason="../shared/data/hh-rlhf is absent")
def test_hh_rlhf_harmless_base_reads_as_pairs():
    path = SHARED_DATA / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    with gzip.open(path, "rt") as f:
        lines = sum(1 for _ in f)
    pairs = load_comparisons(path, skip_invalid=True)
    assert lines - 10 < len(pairs) <= lines  # a few upstream dialogues differ before their last turn
    assert all(p.prompt[-1]["role"] == "user" for p in pairs)
