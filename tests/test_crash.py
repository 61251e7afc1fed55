"""Crash safety: every training stage is killed (SIGKILL) at random moments — during steps,
evaluations and checkpoint writes — and resumed with --resume each time; the final weights equal
an uninterrupted run's, to the bit. PPO keeps its checkpoints between rollouts, so a resumed run
regenerates the same rollout and continues with the same state.

Slow (about a minute a stage): `make test-slow`, or `CRASH_KILLS=3 pytest -m slow tests/test_crash.py`.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from instructgpt.checkpoint import latest_checkpoint
from test_distributed import inputs, stage_specs, weights  # noqa: F401 (inputs is a fixture)

pytestmark = pytest.mark.slow
KILLS = int(os.environ.get("CRASH_KILLS", "10"))
STEPS = {"pretrain": 160, "sft": 64, "heads": 160, "rm": 64, "dpo": 64, "ppo": 24}
STAGES = [(0, "pretrain", "pretrain"), (1, "sft", "sft"), (2, "sft", "heads"), (3, "reward", "rm"), (4, "dpo", "dpo"),
          (5, "ppo", "ppo")]


def start(command: str, config: Path, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "instructgpt", command, str(config), *(["--resume"] if resume else [])],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def logged_steps(metrics: Path) -> int:
    if not metrics.is_file():
        return 0
    steps = [json.loads(line).get("step", 0) for line in metrics.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


@pytest.mark.parametrize("index,command,name", STAGES, ids=[s[2] for s in STAGES])
def test_killed_at_random_moments_then_resumed_equals_uninterrupted(inputs, tmp_path, index, command, name):  # noqa: F811
    rng = random.Random(f"crash:{name}")
    configs = {}
    for run in ("whole", "killed"):
        job = stage_specs(inputs, tmp_path / run, 1, 1)[index]
        steps = STEPS[name]  # enough that training, not start-up and saving, fills most of a run
        job["config"]["train"] |= {"max_steps": steps, "save_every": steps // 8, "log_every": 1}
        if name in ("pretrain", "sft", "heads"):
            job["config"]["train"]["eval_every"] = steps // 4
        configs[run] = tmp_path / f"{run}.json"
        configs[run].write_text(json.dumps(job["config"]))
    whole = start(command, configs["whole"], resume=False)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-3000:]

    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics" / f"{name}.jsonl").read_text().splitlines()]
    times = [r["time"] for r in rows if "train/loss" in r]
    step_s = (times[-1] - times[0]) / max(len(times) - 1, 1)  # wall time a step, evaluations and saves included

    metrics = tmp_path / "killed" / "metrics" / f"{name}.jsonl"
    checkpoints = tmp_path / "killed" / name / "checkpoints"
    kills = []
    for k in range(KILLS):
        done = int(latest.name.split("-")[1]) if (latest := latest_checkpoint(checkpoints)) else 0
        if metrics.is_file():  # what --resume keeps of the log, so that new progress shows
            metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines()
                                       if json.loads(line).get("step", 0) <= done))
        proc = start(command, configs["killed"], resume=k > 0)
        deadline = time.monotonic() + 120
        while proc.poll() is None and logged_steps(metrics) <= done and time.monotonic() < deadline:
            time.sleep(0.01)  # training has restarted; now a random moment in what is left of it
        # within the next ~1.5/KILLS of the run, so that the kills spread over all of it
        window = min(STEPS[name] - done, 1.5 * STEPS[name] / KILLS) * step_s
        try:
            proc.wait(timeout=rng.uniform(0.0, window))
            assert proc.returncode == 0, proc.stderr.read()[-3000:]
            kills.append("finished")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(logged_steps(metrics))
    final = start(command, configs["killed"], resume=True)
    assert final.wait(timeout=300) == 0, final.stderr.read()[-3000:]
    print(f"{name}: killed after logged steps {kills}")
    assert sum(isinstance(k, int) for k in kills) >= 0.7 * KILLS, kills  # kills that landed mid-run

    a, b = weights(tmp_path / "whole" / name), weights(tmp_path / "killed" / name)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{name}: {key} differs after {len(kills)} kills"
    assert (tmp_path / "killed" / name / "complete.json").is_file()
