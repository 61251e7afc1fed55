"""`instructgpt bench ppo`: one PPO step of our stage against TRL 1.12's experimental PPOTrainer.

A step = a rollout of 16 prompts × 32 sampled new tokens (scored by the reward model, with the
reference and value models' forwards), then 4 PPO epochs over it in one minibatch. Same policy,
reference, reward and value models (the value model starts from the RM, as in both tools), no
EMA (TRL has none). Ours is the real stage (`stages.ppo.run`) for 1 + k rollouts per round,
timed from its own per-step metrics; TRL runs in a worker process (`trl_ppo_worker`) because
its PPO lives only in TRL 1.12, installed beside the bench extra by `make bench`. Lower s/step
is better; the ratio is TRL's time over ours.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.bench.workload import workload
from instructgpt.config.errors import UserError
from instructgpt.utils.logging import info, read_metrics

BATCH, NEW_TOKENS, PPO_EPOCHS = 16, 32, 4
GOAL = 2.0
TRL_PPO = Path("benchmarks/.trl-1.12")
INSTALL = f'pip install --no-deps --target {TRL_PPO} "trl==1.12.*"'


def _reward_folder(w) -> Path:
    """The reward model: the policy's body with a fresh score head (its scores do not change the work)."""
    from instructgpt.models.reward import load_score_model
    folder = w.model_dir.parent / f"{w.model_dir.name}-rm"
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        rm = load_score_model(w.model_dir, new_head=True)
        torch.nn.init.normal_(rm.score.weight, std=0.02)
        rm.save_pretrained(folder)
        w.tokenizer.save_pretrained(folder)
    return folder


PROMPTS = BATCH * 64  # both sides draw their rollouts' prompts from the same first records


def _prompts(w) -> list[list[int]]:
    from instructgpt.data.preference import encode_prompt
    return [encode_prompt(w.tokenizer, [{"role": "user", "content": r["prompt"]}]) for r in w.records[:PROMPTS]]


def ours_side(size: str, precision: str, steps: int):
    from instructgpt.config import PPOConfig
    from instructgpt.stages import ppo
    w = workload(size)
    reward_dir = _reward_folder(w)
    work = Path(tempfile.mkdtemp(prefix="instructgpt-bench-ppo-"))
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"]}) + "\n" for r in w.records[:PROMPTS]))
    rounds = iter(range(10 ** 6))
    updates = PPO_EPOCHS

    def one_round() -> Steps:
        out = work / f"round{next(rounds)}"
        cfg = PPOConfig(out=str(out), model={"path": str(w.model_dir)}, reward_model=str(reward_dir),
                        prompts=[str(prompts)], rollout_batch=BATCH, minibatches=1, ppo_epochs=PPO_EPOCHS,
                        max_new_tokens=NEW_TOKENS, ema_decay=0.0,
                        train={"max_steps": (steps + 1) * updates, "batch_size": BATCH, "log_every": 1,
                               "save_every": 0, "eval_every": 0, "progress": False, "precision": precision})
        ppo.run(cfg)
        rows = read_metrics(out.parent / "metrics" / f"{out.name}.jsonl")
        result = Steps()
        for r in range(1, steps + 1):  # rollout 0 is the warm-up
            mine = [m for m in rows if r * updates < m["step"] <= (r + 1) * updates]
            generate = sum(m["ppo/time_generate_s"] for m in mine)
            learn = sum(m["ppo/time_learn_s"] + m["ppo/time_other_s"] for m in mine)
            result.seconds.append(generate + learn)
            result.units.append(1)
            result.split.setdefault("rollout_s", []).append(generate)
            result.split.setdefault("learn_s", []).append(learn)
        return result

    return one_round


class TRLWorker:
    """The TRL 1.12 PPO worker process, kept alive across rounds."""

    def __init__(self, size: str, precision: str, steps: int) -> None:
        if not (TRL_PPO / "trl").is_dir():
            raise UserError(f"{TRL_PPO}: TRL 1.12 (the last release with PPOTrainer) is not installed there: "
                            f"`make bench` or `{INSTALL}`")
        w = workload(size)
        settings = {"model_dir": str(w.model_dir), "reward_dir": str(_reward_folder(w)), "batch": BATCH,
                    "new_tokens": NEW_TOKENS, "ppo_epochs": PPO_EPOCHS, "precision": precision,
                    "threads": torch.get_num_threads(), "prompts": _prompts(w)}
        path = Path(tempfile.mkdtemp(prefix="instructgpt-bench-trl-ppo-")) / "settings.json"
        path.write_text(json.dumps(settings))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TRL_PPO.resolve()), os.environ.get("PYTHONPATH", "")]),
               "TRL_EXPERIMENTAL_SILENCE": "1"}
        self.steps = steps
        self.process = subprocess.Popen([sys.executable, "-m", "instructgpt.bench.trl_ppo_worker", str(path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def __call__(self) -> Steps:
        self.process.stdin.write(json.dumps({"steps": self.steps}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the TRL PPO worker stopped (exit code {self.process.wait()}); see its output above")
        got = json.loads(line)
        return Steps(got["seconds"], [1] * len(got["seconds"]), [], got["peak_mb"], {"generate_s": got["generate"]})

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def run(steps: int = 3, out: str = "benchmarks/results", sizes: tuple[str, ...] = ("tiny",), rounds: int = 3,
        precision: str = "auto", write: bool = True) -> list[harness.Row]:
    precision, peak = harness.setup(precision)
    rows = []
    for size in sizes:
        info(f"bench ppo: {size}, {precision}, {BATCH} prompts × {NEW_TOKENS} new tokens, {PPO_EPOCHS} PPO epochs; "
             f"{rounds} rounds of {steps} steps")
        worker = TRLWorker(size, precision, steps)
        try:
            measured = harness.alternate({"ours": ours_side(size, precision, steps), "trl": worker}, rounds)
        finally:
            worker.close()
        rows.append(harness.row("PPO step", size, "s/step", measured, peak, precision, goal=GOAL,
                                notes="ours split: " + _split(measured["ours"]) + "; TRL: " + _split(measured["trl"])))
    if write:
        harness.write("ppo", rows, peak, out)
    return rows


def _split(steps: Steps) -> str:
    import statistics
    return ", ".join(f"{k.removesuffix('_s')} {statistics.median(v):.2f} s" for k, v in steps.split.items())
