"""Task files: our JSON format round-trips; Super-NaturalInstructions JSON is read as is."""
import json

import pytest

from conftest import SHARED_DATA
from instructgpt.config import TasksConfig, UserError
from instructgpt.tasks.loaders import load_task_file, load_task_paths, save_task_file
from instructgpt.tasks.registry import builtin_tasks, load_tasks

SNI = SHARED_DATA / "super-natural-instructions" / "tasks"


def test_export_and_reload_round_trip(tmp_path):
    spec = next(iter(builtin_tasks().values()))
    task = spec.build(10, seed=3)
    save_task_file(task, tmp_path / f"{task.name}.json")
    assert load_task_file(tmp_path / f"{task.name}.json") == task


def test_bad_fields_are_named(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"name": "t", "kind": "classification", "cluster": "c", "metric": "accuracy",
                             "instructions": ["Pick."], "examples": []}))
    with pytest.raises(UserError, match=rf"{f}: field '\(task\)'.*labels"):
        load_task_file(f)
    f.write_text(json.dumps({"name": "t", "kind": "qa", "cluster": "c", "metric": "f1",
                             "instructions": ["Q"], "exmples": []}))
    with pytest.raises(UserError, match=rf"{f}: field 'exmples'.*valid fields"):
        load_task_file(f)


def test_user_tasks_join_the_builtin_suite_and_split(tmp_path):
    examples = [{"input": f"item {i}", "output": str(i)} for i in range(50)]
    (tmp_path / "mine.json").write_text(json.dumps({
        "name": "echo_number", "kind": "extraction", "cluster": "mine", "metric": "exact_match",
        "instructions": ["Give the number in: {input}"], "examples": examples}))
    tasks = load_tasks(TasksConfig(files=[str(tmp_path)], n_test=20, n_val=20, n_train=30, n_rl=3))
    mine = next(t for t in tasks if t.task.name == "echo_number")
    sizes = {k: len(v) for k, v in mine.splits.items()}
    assert sizes == {"test": 10, "val": 5, "train": 30, "rl": 3}
    seen = [ex.input for split in mine.splits.values() for ex in split]
    assert len(set(seen)) == 48
    adding = load_tasks(TasksConfig(files=[str(tmp_path)], n_test=20, n_val=20, n_train=30, n_rl=0))
    again = next(t for t in adding if t.task.name == "echo_number")
    assert all(again.splits[s] == mine.splits[s] for s in ("train", "val", "test")) and not again.splits["rl"]
    builtin = {t.task.name: t for t in tasks}["addition"]
    without = {t.task.name: t for t in adding}["addition"]
    assert builtin.splits["test"] == without.splits["test"] and len(builtin.splits["rl"]) == 3
    assert not {e.input for e in builtin.splits["rl"]} & {e.input for e in builtin.splits["train"]}
    record = mine.records("train", 0)[0]
    assert record["prompt"].startswith("Give the number in: item ")
    with pytest.raises(UserError, match="defined twice"):
        load_tasks(TasksConfig(files=[str(tmp_path), str(tmp_path / "mine.json")]))


@pytest.mark.skipif(not SNI.is_dir(), reason="../shared/data/super-natural-instructions is not present")
def test_reads_super_natural_instructions():
    tasks = {t.name: t for t in load_task_paths([str(SNI)])}
    assert len(tasks) == 20
    sst2 = tasks["task363_sst2_polarity_classification"]
    assert sst2.kind == "classification" and set(sst2.labels) == {"POS", "NEG"}
    assert "movie reviews" in sst2.instructions[0] and len(sst2.examples) >= 20
    arith = tasks["task085_unnatural_addsub_arithmetic"]
    assert arith.examples[0].input == "1575 + 6566 + 3553 + 343 + 5125 - 6463 - 6491"
    assert arith.examples[0].output == "-1058"
    assert all(ex.all_references() for t in tasks.values() for ex in t.examples)


def test_chatty_demonstrators_pad_train_answers_only_and_keep_the_bare_reference():
    from instructgpt.tasks.registry import FILLERS
    tasks = {t.task.name: t for t in load_tasks(TasksConfig(n_train=200, n_val=5, n_test=5))}
    padded = tasks["addition"].records("train", 0, filler=0.3)
    plain = tasks["addition"].records("train", 0)
    changed = [(p, q) for p, q in zip(padded, plain) if p["completion"] != q["completion"]]
    assert 30 <= len(changed) <= 90  # about 30% of 200
    for p, q in changed:
        assert p["references"] == [q["completion"]] and p["prompt"] == q["prompt"]
        assert any(p["completion"] == f.format(q["completion"]) for f in FILLERS)
    assert tasks["addition"].records("test", 0, filler=1.0) == tasks["addition"].records("test", 0)
    # a classification answer must stay a label
    assert tasks["review_sentiment"].records("train", 0, filler=1.0) == tasks["review_sentiment"].records("train", 0)
