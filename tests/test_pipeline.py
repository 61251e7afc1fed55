"""`instructgpt run`: tasks -> tokenizer -> pretrain; complete stages are skipped on a rerun."""
import json

from conftest import run_cli

TINY = ["name=t", "tasks.n_train=20", "tasks.n_val=5", "tasks.n_test=5", "tasks.corpus_mb=0.2",
        "tokenizer.vocab_size=600", "pretrain.train.max_steps=6", "pretrain.train.batch_size=4",
        "pretrain.train.seq_len=32", "pretrain.train.eval_every=3", "pretrain.train.save_every=3",
        "pretrain.train.progress=false"]


def test_run_end_to_end_then_skip(tmp_path):
    result = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "t"
    for stage in ("tasks", "tokenizer", "pretrain"):
        assert (run / stage / "complete.json").is_file(), stage
    index = json.loads((run / "tasks" / "index.json").read_text())
    assert len(index) >= 20 and sum(v["held_out"] for v in index.values()) >= 2
    first = next(iter(index))
    assert len((run / "tasks" / first / "train.jsonl").read_text().splitlines()) == 20
    assert (run / "run.yaml").is_file() and (run / "pretrain" / "run.yaml").is_file()
    assert "unigram entropy" in result.stderr

    again = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert again.returncode == 0, again.stderr
    for stage in ("tasks", "tokenizer", "pretrain"):
        assert f"{stage}: complete, skipped" in again.stderr


def test_interrupted_pretrain_continues_on_rerun(tmp_path):
    first = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert first.returncode == 0, first.stderr
    pre = tmp_path / "t" / "pretrain"
    (pre / "complete.json").unlink()          # as if the process died after the step-3 checkpoint
    import shutil
    shutil.rmtree(pre / "checkpoints" / "step-6")
    again = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "(step 3)" in again.stderr
    assert (pre / "complete.json").is_file()
