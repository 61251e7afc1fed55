"""The TRL side of `instructgpt bench ppo`, run in its own process: TRL 1.12's experimental
PPOTrainer (later TRL releases dropped it), imported from the folder `make bench` installs it
into, so it never meets the TRL of the `bench` extra.

    python -m instructgpt.bench.trl_ppo_worker SETTINGS.json

Reads one JSON line per round from stdin ({"steps": k}), trains a fresh trainer for 1 + k PPO
updates and answers one JSON line: the seconds of each update after the first, and the seconds
of generation within it.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings


def main(settings: dict) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from instructgpt.bench.harness import PeakMemory
    warnings.filterwarnings("ignore")
    from trl.experimental.ppo import PPOConfig, PPOTrainer, ppo_trainer

    results, sys.stdout = sys.stdout, sys.stderr  # TRL prints to stdout; only results go there
    torch.set_num_threads(settings["threads"])
    tokenizer = AutoTokenizer.from_pretrained(settings["model_dir"], padding_side="left")
    prompts = Dataset.from_list([{"input_ids": ids} for ids in settings["prompts"]])
    generation: list[float] = []
    original = ppo_trainer.batch_generation

    def timed_generation(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            generation.append(time.perf_counter() - started)

    ppo_trainer.batch_generation = timed_generation
    marks: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    for line in sys.stdin:
        steps = json.loads(line)["steps"]
        batch = settings["batch"]
        args = PPOConfig(
            output_dir=tempfile.mkdtemp(prefix="instructgpt-bench-trl-ppo-"), per_device_train_batch_size=batch,
            gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=settings["ppo_epochs"],
            total_episodes=batch * (steps + 1), response_length=settings["new_tokens"], local_rollout_forward_batch_size=batch,
            stop_token="eos", learning_rate=1e-5, bf16=settings["precision"] == "bf16", gradient_checkpointing=False,
            save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no", num_sample_generations=0,
            use_cpu=not torch.cuda.is_available(), seed=0)
        policy = AutoModelForCausalLM.from_pretrained(settings["model_dir"])
        ref = AutoModelForCausalLM.from_pretrained(settings["model_dir"])
        value = AutoModelForSequenceClassification.from_pretrained(settings["reward_dir"], num_labels=1)
        reward = AutoModelForSequenceClassification.from_pretrained(settings["reward_dir"], num_labels=1)
        trainer = PPOTrainer(args=args, processing_class=tokenizer, model=policy, ref_model=ref, reward_model=reward,
                             value_model=value, train_dataset=prompts, callbacks=[Stamp()])
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)
        marks.clear()
        generation.clear()
        with PeakMemory() as memory:
            trainer.train()
        print(json.dumps({"seconds": [b - a for a, b in zip(marks, marks[1:])], "generate": generation[1:],
                          "peak_mb": memory.peak_mb}), file=results, flush=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
