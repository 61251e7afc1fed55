"""Every training stage under torchrun with 2 CPU processes (gloo) equals one process with the same
global batch: the logged losses and the final weights agree. FSDP2 saves a folder that
`from_pretrained` loads. A killed rank stops the job with a clear error; --resume continues."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, write_task_files

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

WORKER = Path(__file__).with_name("distributed_worker.py")
# fp32: the runs compared here must agree to fp32 rounding; bf16 autocast (what `auto` picks on a
# CPU with fast bf16) rounds differently when a batch is split over ranks or micro-batches
TRAIN = {"log_every": 1, "save_every": 0, "eval_every": 0, "progress": False, "seq_len": 64, "precision": "fp32"}
TASKS = {
    "colour": ("rewrite", "echo", "exact_match", ["Repeat the colour."], None,
               [(w, w) for w in "red green blue black white brown pink gray gold teal".split() * 2]),
    "parity": ("classification", "numbers", "accuracy", ["Is the number even or odd?"], ["even", "odd"],
               [(str(n), "even" if n % 2 == 0 else "odd") for n in range(24)]),
}


def launch(spec: list[dict], path: Path, world: int, timeout: int = 300, args: tuple = ()) -> subprocess.Popen:
    """The worker on `spec`, alone (world 1) or under torchrun with `world` gloo processes."""
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, str(WORKER), str(path)] if world == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *args,
         str(WORKER), str(path)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: int = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tokenizer, corpus_file):
    """A tiny start model, an RM with a random head, task files, rankings and PPO prompts."""
    from instructgpt.checkpoint import save_hf_folder
    from instructgpt.config import ModelConfig
    from instructgpt.models.build import build_model
    from instructgpt.models.reward import load_score_model
    root = tmp_path_factory.mktemp("dist")
    torch.manual_seed(0)
    start = build_model(ModelConfig(preset="tiny"), tokenizer)
    save_hf_folder(root / "start", start, tokenizer, "")
    from transformers import LlamaForCausalLM
    tied = LlamaForCausalLM(start.config.__class__(**{**start.config.to_dict(), "tie_word_embeddings": True}))
    assert tied.lm_head.weight is tied.model.embed_tokens.weight  # like SmolLM2
    save_hf_folder(root / "start-tied", tied, tokenizer, "")
    rm = load_score_model(root / "start", new_head=True)
    torch.nn.init.normal_(rm.score.weight, std=0.5)
    save_hf_folder(root / "rm", rm, tokenizer, "")
    files = root / "task_files"
    write_task_files(files, TASKS)
    words = "apple pear plum fig kiwi lime".split()
    with open(root / "rankings.jsonl", "w") as f:
        for i in range(16):
            f.write(json.dumps({"prompt": f"Name fruit number {i}.", "completions": [words[(i + k) % 6] for k in range(4)],
                                "ranking": [0, 1, 2, 3]}) + "\n")
    with open(root / "prompts.jsonl", "w") as f:
        for i in range(8):
            f.write(json.dumps({"prompt": f"Say a word about {words[i % 6]}."}) + "\n")
    return {"root": root, "corpus": str(corpus_file)}


def stage_specs(inputs: dict, out: Path, world: int, grad_accum: int) -> list[dict]:
    """Every training stage with `grad_accum` micro-batches per process (PPO: 2·grad_accum prompts):
    pretrain, sft (LM), sft (task heads on the GRU encoder), reward, dpo, ppo."""
    root, t = inputs["root"], {**TRAIN, "grad_accum": grad_accum, "batch_size": 2}
    start, rankings = str(root / "start"), [{"path": str(root / "rankings.jsonl")}]
    opt = {"lr": 1e-3, "warmup_steps": 0}
    return [
        {"stage": "pretrain", "config": {
            "out": str(out / "pretrain"), "tokenizer": start, "corpus": [inputs["corpus"]], "model": {"preset": "tiny"},
            "optim": opt, "train": {**t, "max_steps": 3, "seq_len": 32, "eval_batches": 1}}},
        {"stage": "sft", "config": {
            "out": str(out / "sft"), "model": {"path": start}, "reduction": "task_balanced",
            "tasks": {"builtin": False, "files": [str(root / "task_files")], "held_out_clusters": [], "n_val": 2,
                      "n_test": 2},
            "optim": opt, "train": {**t, "max_steps": 3, "eval_every": 3},
            "eval": {"samples_per_task": 3, "baseline": False, "max_new_tokens": 3, "batch_size": 4}}},
        {"stage": "sft", "config": {
            "out": str(out / "heads"), "mode": "heads", "tokenizer": start,
            "heads": {"encoder": "gru", "embed_dim": 32, "hidden": 32, "dropout": 0.0, "max_len": 32},
            "tasks": {"builtin": False, "files": [str(root / "task_files")], "held_out_clusters": [], "n_val": 2,
                      "n_test": 2},
            "optim": opt, "train": {**t, "max_steps": 3}}},
        {"stage": "reward", "config": {
            "out": str(out / "rm"), "model": {"path": start}, "data": rankings, "max_len": 32, "optim": opt,
            "train": {**t, "max_steps": 3}}},
        {"stage": "dpo", "config": {
            "out": str(out / "dpo"), "model": {"path": start}, "data": rankings, "max_len": 32, "optim": opt,
            "train": {**t, "max_steps": 3}}},
        {"stage": "ppo", "config": {
            "out": str(out / "ppo"), "model": {"path": start}, "reward_model": str(root / "rm"),
            "prompts": [str(root / "prompts.jsonl")], "rollout_batch": 2 * grad_accum, "minibatches": 1,
            "ppo_epochs": 2, "max_new_tokens": 5, "normalize_reward": True, "adaptive_kl": True,
            "optim": opt, "train": {**t, "max_steps": 4}}},
    ]


def losses(folder: Path, name: str) -> list[float]:
    lines = [json.loads(line) for line in (folder / "metrics" / f"{name}.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in lines if "train/loss" in r]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=2e-5, msg=lambda m: f"{a.name}: {k}: {m}")


def variant(job: dict, out: Path, resume: bool = False, optim: dict | None = None, **train) -> dict:
    """`job` writing to `out`, with train (and optim) keys changed."""
    config = job["config"]
    return {**job, "resume": resume, "config": {**config, "out": str(out), "optim": {**config["optim"], **(optim or {})},
                                                "train": {**config["train"], **train}}}


def tied(job: dict, root: Path) -> dict:
    """`job` starting from the tiny model with tied input and output embeddings."""
    return {**job, "config": {**job["config"], "model": {"path": str(root / "start-tied")}}}


@pytest.fixture(scope="module")
def runs(inputs):
    """The five stages in one process (grad_accum 2) and on 2 ranks (grad_accum 1); SFT under FSDP2,
    and SFT at a constant learning rate: alone for 3 steps, and under FSDP2 for 2 steps then resumed
    to 3 from its step-2 checkpoint."""
    root, fsdp = inputs["root"], {"strategy": "fsdp"}
    one = stage_specs(inputs, root / "one", 1, 2)
    one.append(variant(one[1], root / "one" / "sft-const", optim={"min_lr_ratio": 1.0}))
    one.append(tied(variant(one[1], root / "one" / "sft-tied", eval_every=0), root))
    two = stage_specs(inputs, root / "two", 2, 1)
    resumed = root / "two" / "sft-fsdp-resume"
    two += [variant(two[1], root / "two" / "sft-fsdp", distributed=fsdp),
            variant(two[1], resumed, optim={"min_lr_ratio": 1.0}, distributed=fsdp, max_steps=2, save_every=1),
            variant(two[1], resumed, resume=True, optim={"min_lr_ratio": 1.0}, distributed=fsdp, save_every=1),
            tied(variant(two[1], root / "two" / "sft-fsdp-tied", eval_every=0, distributed=fsdp), root)]
    alone = launch(one, root / "one.json", 1)
    finish(alone)  # one at a time: the machine may have 2 cores
    log = finish(launch(two, root / "two.json", 2))
    return root / "one", root / "two", log


@pytest.mark.parametrize("stage,name", [("pretrain", "pretrain"), ("sft", "sft"), ("sft heads", "heads"),
                                        ("reward", "rm"), ("dpo", "dpo"), ("ppo", "ppo")])
def test_two_processes_equal_one_with_the_same_global_batch(runs, stage, name):
    one, two, log = runs
    assert "ddp over 2 processes" in log
    l1, l2 = losses(one, name), losses(two, name)
    assert len(l1) == len(l2) >= 3
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-6)
    assert_same_weights(one / name, two / name)
    assert (two / name / "complete.json").is_file()


def test_ppo_rollout_statistics_are_reduced_over_the_ranks(runs):
    one, two, _ = runs
    read = lambda f: [json.loads(line) for line in (f / "metrics" / "ppo.jsonl").read_text().splitlines()]
    for r1, r2 in zip(read(one), read(two)):
        for key in ("ppo/reward", "ppo/kl", "ppo/beta", "ppo/response_length", "ppo/explained_variance"):
            assert r1[key] == pytest.approx(r2[key], rel=1e-4, abs=1e-6), key


def test_evaluation_during_training_gives_the_same_scores_under_ddp_and_fsdp2(runs):
    one, two, _ = runs
    read = lambda f, name: [json.loads(line) for line in (f / "metrics" / f"{name}.jsonl").read_text().splitlines()]
    evals = [{k: v for r in read(f, name) for k, v in r.items() if k.startswith("eval/")}
             for f, name in ((one, "sft"), (two, "sft"), (two, "sft-fsdp"))]
    assert evals[0] and "eval/held_in_mean" in evals[0]
    for other in evals[1:]:
        assert other.keys() == evals[0].keys()
        assert other == pytest.approx(evals[0], rel=1e-4, abs=1e-6)


def test_fsdp2_saves_a_folder_from_pretrained_loads_with_the_single_process_weights(runs):
    from transformers import AutoModelForCausalLM
    one, two, log = runs
    assert "fsdp over 2 processes" in log
    model = AutoModelForCausalLM.from_pretrained(two / "sft-fsdp")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert losses(one, "sft") == pytest.approx(losses(two, "sft-fsdp"), rel=1e-4, abs=1e-6)
    assert_same_weights(one / "sft", two / "sft-fsdp")


def test_fsdp2_keeps_tied_embeddings_tied(runs):
    from transformers import AutoModelForCausalLM
    one, two, _ = runs
    model = AutoModelForCausalLM.from_pretrained(two / "sft-fsdp-tied")
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert losses(one, "sft-tied") == pytest.approx(losses(two, "sft-fsdp-tied"), rel=1e-4, abs=1e-6)
    assert_same_weights(one / "sft-tied", two / "sft-fsdp-tied")


def test_an_fsdp2_checkpoint_resumes_to_the_uninterrupted_result(runs):
    one, two, log = runs
    assert "resumed from" in log and "sft-fsdp-resume/checkpoints/step-2 (step 2, precision " in log
    assert losses(one, "sft-const") == pytest.approx(losses(two, "sft-fsdp-resume"), rel=1e-4, abs=1e-6)
    assert_same_weights(one / "sft-const", two / "sft-fsdp-resume")


@pytest.mark.slow  # ~30 s: two more torchrun launches
def test_a_killed_rank_fails_the_job_clearly_and_resume_continues(inputs, tmp_path):
    """SIGKILL one rank after the step-2 checkpoint: torchrun stops within the collective timeout and
    names the rank; the same command with --resume continues from the checkpoint to the end."""
    job = stage_specs(inputs, tmp_path, 2, 1)[0]
    job["config"]["train"] |= {"max_steps": 400, "save_every": 2, "distributed": {"timeout_s": 30}}
    started = time.monotonic()
    proc = launch([job], tmp_path / "job.json", 2)
    checkpoints = tmp_path / "pretrain" / "checkpoints"
    while not (checkpoints / "step-2").is_dir():
        assert proc.poll() is None and time.monotonic() - started < 240, "no checkpoint appeared"
        time.sleep(0.2)
    victim = rank_pid(proc.pid, 1)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.monotonic() - killed < 60
    assert "rank 1" in out or "local_rank: 1" in out, out[-3000:]
    print(out[-2500:])  # for -s: what the user sees
    done = max(int(p.name.split("-")[1]) for p in checkpoints.iterdir() if p.name.startswith("step-"))
    assert done < 400
    job["config"]["train"]["max_steps"] = done + 4
    out = finish(launch([{**job, "resume": True}], tmp_path / "resume.json", 2))
    assert f"resumed from {checkpoints / f'step-{done}'} (step {done}, precision " in out
    steps = [r["step"] for line in (tmp_path / "metrics" / "pretrain.jsonl").read_text().splitlines()
             if "train/loss" in (r := json.loads(line))]
    assert steps == list(range(1, done + 5))
    assert (tmp_path / "pretrain" / "complete.json").is_file()


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of the worker process with RANK=rank among the launcher's descendants (Linux /proc)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in environ and any(e.startswith(b"TORCHELASTIC_RUN_ID=") for e in environ) \
                    and _descends(int(entry.name), launcher):
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no worker with RANK={rank}")


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def test_commands_that_do_not_train_refuse_torchrun(monkeypatch, capsys):
    from instructgpt.cli import main
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["tasks", "list"]) == 2
    assert "'instructgpt tasks' runs in one process; under torchrun use one of: pretrain, sft" in capsys.readouterr().err


def test_world_size_without_torchrun_variables_is_a_clear_error(monkeypatch):
    from instructgpt.config import UserError
    from instructgpt.config.schema import DistributedConfig
    from instructgpt.utils import dist
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UserError, match="WORLD_SIZE=2 but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT unset: launch with torchrun"):
        dist.setup(DistributedConfig())
