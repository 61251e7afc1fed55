"""One typed config per command; defaults here are the only defaults."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from instructgpt.config.errors import UserError
from instructgpt.config.loader import StrictConfig

PRESETS = ("tiny", "small", "base")  # sizes live in models/presets.py; a test keeps them equal


class OptimConfig(StrictConfig):
    lr: float = Field(1e-3, gt=0, description="peak learning rate after warmup")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay, applied to 2D+ tensors only")
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = Field(20, ge=0, description="linear warmup, in optimizer steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr x this")
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables")


class TrainConfig(StrictConfig):
    max_steps: int = Field(300, gt=0, description="optimizer steps")
    batch_size: int = Field(16, gt=0, description="sequences per micro-batch")
    grad_accum: int = Field(1, gt=0, description="micro-batches per optimizer step")
    seq_len: int = Field(256, gt=1, description="tokens per sequence")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 = autocast, fp32 master weights")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    seed: int = 0
    eval_every: int = Field(100, ge=0, description="steps between evaluations; 0 = only at the end")
    eval_batches: int = Field(8, gt=0, description="micro-batches per evaluation")
    save_every: int = Field(100, ge=0, description="steps between checkpoints; 0 = only at the end")
    keep_checkpoints: int = Field(2, gt=0, description="newest checkpoints kept on disk")
    log_every: int = Field(10, gt=0)
    progress: bool = Field(True, description="show a tqdm progress bar")


class ModelConfig(StrictConfig):
    arch: Literal["llama", "bert"] = Field("llama", description="llama = causal LM, bert = masked LM")
    preset: Literal["tiny", "small", "base"] = Field("tiny", description="size preset for a new model")
    path: str | None = Field(None, description="HF model folder or GGUF file to start from instead")
    max_position_embeddings: int = Field(512, gt=0)


class TasksConfig(StrictConfig):
    out: str | None = Field(None, description="folder for tasks/<task>/{train,val,test}.jsonl")
    builtin: bool = Field(True, description="include the built-in task suite")
    files: list[str] = Field(default_factory=list, description="task JSON / SNI files or folders")
    seed: int = 0
    n_train: int = Field(300, ge=0, description="examples per task")
    n_val: int = Field(30, ge=0)
    n_test: int = Field(50, ge=0)
    held_out_clusters: list[str] | None = Field(None, description="None = the suite's default")
    corpus_mb: float = Field(3.0, ge=0, description="size of the generated pretraining prose")


class TokenizerConfig(StrictConfig):
    out: str | None = Field(None, description="output tokenizer folder")
    files: list[str] = Field(default_factory=list, description=".txt or .jsonl files to train on")
    vocab_size: int = Field(4096, ge=300)
    min_frequency: int = Field(2, ge=1)


class PretrainConfig(StrictConfig):
    out: str | None = Field(None, description="output HF model folder")
    tokenizer: str | None = Field(None, description="tokenizer folder (or the start model's)")
    corpus: list[str] = Field(default_factory=list, description=".txt or {text} .jsonl files")
    objective: Literal["clm", "mlm"] = "clm"
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    val_fraction: float = Field(0.02, gt=0, lt=0.5, description="documents held out for eval")
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


class RunConfig(StrictConfig):
    """The whole recipe; paths inside stages are filled in by the pipeline."""

    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.\-]+$")
    runs_dir: str = "runs"
    tasks: TasksConfig = TasksConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    pretrain: PretrainConfig = PretrainConfig()


def require(cfg: StrictConfig, *keys: str) -> None:
    """Fail with the missing key's name when a stage runs without a path it needs."""
    for key in keys:
        if not getattr(cfg, key):
            raise UserError(f"{type(cfg).__name__}: key '{key}' is required (set it in the YAML "
                            f"or as {key}=... on the command line)")
