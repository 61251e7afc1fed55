"""SFT records of every shape, their file:line errors, task mixing and step planning."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from instructgpt.config import SFTConfig, UserError
from instructgpt.config.schema import MixConfig, RecordSource
from instructgpt.data.mixing import EPOCH_COUNTS, epoch_sample
from instructgpt.data.sft import load_task_data, to_messages


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_every_shape_becomes_messages():
    assert to_messages({"prompt": "p", "completion": "c"}, "x") == [
        {"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]
    alpaca = to_messages({"instruction": "Reverse {input}.", "input": "abc", "output": "cba"}, "x")
    assert alpaca[0]["content"] == "Reverse abc." and alpaca[1]["content"] == "cba"
    assert to_messages({"instruction": "Say hi.", "input": "", "output": "hi"}, "x")[0]["content"] == "Say hi."
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"}, {"role": "user", "content": "trailing"}]
    assert to_messages({"messages": chat}, "x") == chat[:3]  # up to the last assistant turn


@pytest.mark.parametrize("record, message", [
    ({"prompt": "p"}, 'sft.jsonl:2: field "completion" is missing (found: prompt)'),
    ({"question": "q", "answer": "a"}, "sft.jsonl:2: not an SFT record (found fields: question, answer)"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "sft.jsonl:2: chat record has no assistant turn"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "sft.jsonl:2: messages[0] needs \"role\""),
    ({"prompt": "p", "completion": "  "}, "sft.jsonl:2: the answer"),
])
def test_bad_records_name_file_and_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "ok", "completion": "fine"}, record])
    with pytest.raises(UserError, match=re.escape(message)):
        load_task_data(SFTConfig(data=[RecordSource(path=str(path))]))


def test_label_outside_a_classification_task_names_file_and_line(tmp_path):
    tasks = tmp_path / "tasks"
    (tasks / "mood").mkdir(parents=True)
    (tasks / "index.json").write_text(json.dumps({"mood": {
        "kind": "classification", "cluster": "c", "metric": "accuracy", "labels": ["happy", "sad"],
        "held_out": False, "instructions": ["Mood?"]}}))
    write_jsonl(tasks / "mood" / "train.jsonl", [{"prompt": "a", "completion": "happy"},
                                                  {"prompt": "b", "completion": "angry"}])
    for split in ("val", "test"):
        write_jsonl(tasks / "mood" / f"{split}.jsonl", [])
    with pytest.raises(UserError, match=r"mood/train.jsonl:2: label 'angry' is not one of task 'mood' labels"):
        load_task_data(SFTConfig(tasks_dir=str(tasks)))


def test_empty_task_is_an_error(tmp_path):
    task = {"name": "empty", "kind": "generation", "cluster": "c", "metric": "exact_match",
            "instructions": ["Do it."], "examples": []}
    (tmp_path / "empty.json").write_text(json.dumps(task))
    with pytest.raises(UserError, match=r"empty.json: task 'empty' has no examples"):
        load_task_data(SFTConfig(tasks={"builtin": False, "files": [str(tmp_path / "empty.json")]}))


def test_record_files_group_by_task_split_and_hold_out_clusters(tmp_path):
    records = [{"dataset": f"d{i % 3}", "prompt": f"q{i}", "completion": f"a{i}<|endoftext|>"} for i in range(60)]
    path = write_jsonl(tmp_path / "p3.jsonl", records)
    cfg = SFTConfig(data=[RecordSource(path=str(path), task_key="dataset", strip_suffix="<|endoftext|>",
                                       clusters={"para": ["d2"]}, exclude=["d1"])],
                    held_out_clusters=["para"], n_val=2, n_test=3)
    tasks = {t.name: t for t in load_task_data(cfg)}
    assert set(tasks) == {"d0", "d2"} and tasks["d2"].held_out and not tasks["d0"].held_out
    assert [len(tasks["d0"].splits[s]) for s in ("train", "val", "test")] == [15, 2, 3]
    answers = [ex["messages"][-1]["content"] for t in tasks.values() for s in t.splits.values() for ex in s]
    assert not any(a.endswith("<|endoftext|>") for a in answers)


SIZES = {"big": 1000, "mid": 100, "small": 10}


@pytest.mark.parametrize("strategy, expected", [
    ("proportional", {"big": 300, "mid": 100, "small": 10}),   # cap K = 300
    ("balanced", {"big": 300, "mid": 300, "small": 300}),
    # T = 2: n_i ∝ sqrt(min(M_i, 300)) = 17.32, 10, 3.162 (Σ 30.48), scaled to Σ min(M_i, K) = 410:
    # 232.97, 134.50, 42.53 -> rounded
    ("temperature", {"big": 233, "mid": 135, "small": 43}),
])
def test_mixing_counts(strategy, expected):
    cfg = MixConfig(strategy=strategy, cap=300, temperature=2.0)
    assert EPOCH_COUNTS[strategy](SIZES, cfg) == expected
    picks = epoch_sample(SIZES, cfg, seed=0, epoch=0)
    assert Counter(t for t, _ in picks) == expected
    assert all(0 <= i < SIZES[t] for t, i in picks)


def test_mixture_is_resampled_every_epoch():
    cfg = MixConfig(strategy="proportional", cap=300)
    first, second = (epoch_sample(SIZES, cfg, 0, e) for e in (0, 1))
    big = [{i for t, i in picks if t == "big"} for picks in (first, second)]
    assert len(big[0]) == len(big[1]) == 300 and big[0] != big[1]  # a fresh subset of the capped task
    assert epoch_sample(SIZES, cfg, 0, 1) == second                  # deterministic in (seed, epoch)


def test_task_file_label_outside_labels_names_the_line(tmp_path):
    task = {"name": "mood", "kind": "classification", "cluster": "c", "metric": "accuracy",
            "instructions": ["Mood?"], "labels": ["happy", "sad"],
            "examples": [{"input": "a", "output": "happy"}, {"input": "b", "output": "angry"}]}
    path = tmp_path / "mood.json"
    path.write_text(json.dumps(task, indent=1))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"angry"' in text)
    with pytest.raises(UserError, match=rf"mood.json:{line}: examples\[1\].output 'angry' is not one of the labels"):
        load_task_data(SFTConfig(tasks={"builtin": False, "files": [str(path)]}))


def test_cli_reports_a_bad_record_in_one_line(tmp_path):
    from conftest import run_cli
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    config = tmp_path / "sft.yaml"
    config.write_text(f"out: {tmp_path / 'out'}\nmodel: {{path: {tmp_path}}}\ndata:\n  - path: {path}\n")
    result = run_cli("sft", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}:1: chat record has no assistant turn; add one "
        '{"role": "assistant", "content": ...} to learn from (or set skip_invalid: true for this data source)']


def _task(name: str, answers: list[str]):
    from instructgpt.data.sft import TaskData
    examples = [{"task": name, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": a}],
                 "references": [a]} for a in answers]
    return TaskData(name=name, cluster=name, kind="rewrite", metric="exact_match", labels=None, held_out=False,
                    splits={"test": examples})


def test_answers_cut_off_counts_the_answers_a_token_budget_cannot_hold(tokenizer, capsys):
    from instructgpt.data.sft import answers_cut_off, warn_cut_off
    short, long = "cat", " ".join(["s-p-e-l-l-e-d"] * 4)
    n_long = len(tokenizer.encode(long, add_special_tokens=False)) + 1  # its end-of-turn token too
    assert n_long > 8
    tasks = [_task("short", [short] * 3), _task("mixed", [short, long, long])]
    examples = [(t, ex) for t in tasks for ex in t.splits["test"]]
    assert answers_cut_off(tokenizer, examples, n_long) == {}
    assert answers_cut_off(tokenizer, examples, n_long - 1) == {"mixed": (2, 3, n_long)}
    ex = dict(tasks[1].splits["test"][1], references=[long, short])  # any reference that fits will do
    assert answers_cut_off(tokenizer, [(tasks[1], ex)], n_long - 1) == {}
    warn_cut_off(tokenizer, examples, n_long - 1, "eval.max_new_tokens")
    line = capsys.readouterr().err.strip()
    assert line == (f"[instructgpt] warning: 2 of 3 'mixed' answers need more than eval.max_new_tokens={n_long - 1} "
                    f"tokens (up to {n_long}), so its score is at most 0.333: raise eval.max_new_tokens to {n_long}")
