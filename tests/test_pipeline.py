"""`instructgpt run`: tasks -> tokenizer -> pretrain -> sft; complete stages are skipped on a rerun."""
import json

from conftest import run_cli

TINY = ["name=t", "tasks.n_train=20", "tasks.n_val=5", "tasks.n_test=5", "tasks.corpus_mb=0.2",
        "tokenizer.vocab_size=600", "pretrain.train.max_steps=6", "pretrain.train.batch_size=4",
        "pretrain.train.seq_len=32", "pretrain.train.eval_every=3", "pretrain.train.save_every=3",
        "pretrain.train.progress=false", "sft.train.max_steps=4", "sft.train.batch_size=4",
        "sft.train.seq_len=128", "sft.train.compile=false", "sft.train.eval_every=0", "sft.train.progress=false",
        "sft.eval.samples_per_task=1", "sft.eval.max_new_tokens=4",
        "tasks.n_rl=6", "comparisons.prompts_per_task=3", "comparisons.heldout_prompts_per_task=2",
        "comparisons.max_new_tokens=4", "comparisons.temperature=2.0", "reward.train.max_steps=2",
        "reward.train.batch_size=4", "reward.train.progress=false", "ppo.rollout_batch=4", "ppo.max_new_tokens=4",
        "ppo.train.max_steps=2", "ppo.train.batch_size=4", "ppo.train.progress=false", "ppo.judge.prompts_per_task=1",
        "ppo.judge.max_new_tokens=4", "dpo.train.max_steps=2", "dpo.train.batch_size=4", "dpo.train.progress=false",
        "dpo.judge.prompts_per_task=1", "dpo.judge.max_new_tokens=4", "eval.examples_per_task=2",
        "eval.win_prompts_per_task=1", "eval.max_new_tokens=4", "eval.bootstrap=50", "few_shot=1",
        "sft.eval.baseline=true"]
STAGES = ("tasks", "tokenizer", "pretrain", "sft", "rm", "ppo", "ppo-ptx", "dpo")


def test_run_end_to_end_then_skip(tmp_path):
    result = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "t"
    for stage in STAGES:
        assert (run / stage / "complete.json").is_file(), stage
    for name in ("comparisons.jsonl", "comparisons-heldout.jsonl", "comparisons-oracle.jsonl", "comparisons.json"):
        assert (run / name).is_file(), name
    scores = json.loads((run / "sft" / "scores.json").read_text())
    assert set(scores["test"]) == set(scores["baseline"]) == set(json.loads((run / "tasks" / "index.json").read_text()))
    assert "held-out (zero-shot)" in result.stderr
    index = json.loads((run / "tasks" / "index.json").read_text())
    assert len(index) >= 20 and sum(v["held_out"] for v in index.values()) >= 2
    first = next(iter(index))
    assert len((run / "tasks" / first / "train.jsonl").read_text().splitlines()) == 20
    assert (run / "run.yaml").is_file() and (run / "pretrain" / "run.yaml").is_file()
    assert "unigram entropy" in result.stderr
    # eval and report: every model of the recipe, judged against SFT; time per stage printed
    evaluated = {p.stem for p in (run / "eval").glob("*.json")} - {"summary", "complete"}
    assert evaluated == {"pretrained", "pretrained-prompted", "sft", "ppo", "ppo-ptx", "dpo"}
    ppo_result = json.loads((run / "eval" / "ppo.json").read_text())
    assert 0 <= ppo_result["win_rate"] <= 1 and ppo_result["kl"] is not None
    stages = json.loads((run / "stages.json").read_text())["stages"]
    assert all(s["status"] == "done" for s in stages.values()), stages
    assert "time per stage" in result.stderr and "total" in result.stderr
    assert (run / "report.md").is_file() and (run / "report.html").is_file()
    report = (run / "report.md").read_text()
    assert "| ppo-ptx |" in report
    # the reward model's accuracy on the oracle's and the held-out labeler's comparisons (issue 4's two numbers)
    assert "| comparisons-oracle |" in report and "| comparisons-heldout |" in report

    again = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY)
    assert again.returncode == 0, again.stderr
    for stage in ("tasks", "tokenizer", "pretrain", "sft", "comparisons", "reward", "ppo", "ppo-ptx", "dpo", "eval"):
        assert f"{stage}: complete, skipped" in again.stderr

    # --from redoes a stage and everything after; a failing stage is named in the report, with no stale numbers
    failed = run_cli("run", "run/demo", f"runs_dir={tmp_path}", *TINY, "--from", "ppo", "ppo.minibatches=8")
    assert failed.returncode != 0 and "minibatches" in failed.stderr
    for stage in ("tasks", "sft", "reward"):
        assert f"{stage}: complete, skipped" in failed.stderr
    stages = json.loads((run / "stages.json").read_text())["stages"]
    assert stages["ppo"]["status"] == "failed" and stages["dpo"]["status"] == "not run"
    assert not (run / "dpo").exists() and not (run / "eval").exists()
    report = (run / "report.md").read_text()
    assert "stage ppo: failed" in report and "stage dpo: not run" in report and "| ppo | 0." not in report


def test_ctrl_c_then_rerun_continues(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    args = ["run", "run/demo", f"runs_dir={tmp_path}", *TINY, "pretrain.train.max_steps=300",
            "pretrain.train.eval_every=0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "instructgpt", *args], stderr=subprocess.PIPE, text=True, env=env)
    checkpoints = tmp_path / "t" / "pretrain" / "checkpoints"
    deadline = time.time() + 180
    while time.time() < deadline and not (checkpoints.is_dir() and any(checkpoints.glob("step-*"))):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "t" / "pretrain" / "complete.json").exists()

    again = run_cli("run", *args[1:])
    assert again.returncode == 0, again.stderr
    for stage in ("tasks", "tokenizer"):
        assert f"{stage}: complete, skipped" in again.stderr
    assert "pretrain (clm): resumed from" in again.stderr
    assert (tmp_path / "t" / "pretrain" / "complete.json").is_file()
