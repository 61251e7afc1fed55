"""Runs training stages in this process from a JSON file: [{"stage": name, "config": {...},
"resume": bool}, ...]. tests/test_distributed.py launches it under torchrun (2 ranks, gloo) and
alone, then compares what the runs wrote. One launch runs every stage: one start-up cost."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from instructgpt.config import DPOConfig, PPOConfig, PretrainConfig, RewardConfig, SFTConfig

CONFIGS = {"pretrain": PretrainConfig, "sft": SFTConfig, "reward": RewardConfig, "dpo": DPOConfig, "ppo": PPOConfig}


def main(spec: str) -> None:
    for job in json.loads(Path(spec).read_text()):
        cfg = CONFIGS[job["stage"]].model_validate(job["config"])
        importlib.import_module(f"instructgpt.stages.{job['stage']}").run(cfg, resume=job.get("resume", False))


if __name__ == "__main__":
    main(sys.argv[1])
