"""Stage `sft`: multi-task instruction tuning of a causal LM with the task-balanced loss
(or, with mode=heads, classification heads on a shared encoder: stages/sft_heads.py)."""
from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from instructgpt.checkpoint import mark_complete, save_hf_folder
from instructgpt.config import SFTConfig, UserError, dump_config, require
from instructgpt.data.mixing import iter_mixture
from instructgpt.data.packing import SFTBatch, pack_batch, pad_batch, plan_micro_batches, unpad_batch
from instructgpt.data.shards import build_shards
from instructgpt.data.sft import TaskData, first_examples, load_task_data, task_metadata, warn_cut_off
from instructgpt.models.build import check_tokenizer, count_parameters, load_model, pad_id
from instructgpt.models.parts import lm_parts
from instructgpt.objectives.linear_ce import linear_cross_entropy
from instructgpt.objectives.sft import STEP_WEIGHTS, Reduction, example_losses_at, loss_positions
from instructgpt.stages.sft_eval import score_tasks, summarize
from instructgpt.tokenizer.chat import encode_chats
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.train.flops import training_flops_per_token
from instructgpt.utils import IGNORE_INDEX, dist
from instructgpt.utils.io import atomic_dir, atomic_write_json, require_writable
from instructgpt.utils.logging import MetricsLogger, info

Key = tuple[str, int]  # (task, index of its training example)


CORPUS_TASK = "corpus"  # the lm_windows task's name


def run(cfg: SFTConfig, resume: bool = False) -> Path:
    """Train on the held-in tasks, score start and final model on every task's test split, save."""
    require(cfg, "out")
    dist.setup(cfg.train.distributed)
    tasks = load_task_data(cfg)
    if cfg.mode == "heads":
        from instructgpt.stages import sft_heads
        return sft_heads.run(cfg, tasks, resume)
    require(cfg.model, "path")
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model.path)
    model = load_model(cfg.model.path)
    check_tokenizer(model, tokenizer, "sft")
    warn_cut_off(tokenizer, first_examples(tasks, "test"), cfg.eval.max_new_tokens,
                 "eval.max_new_tokens")  # once: the test scores at the end, and validation on the same tasks
    held_in = [t for t in tasks if not t.held_out]
    info(f"sft: {len(held_in)} held-in tasks ({sum(len(t.splits['train']) for t in held_in):,} examples), "
         f"{len(tasks) - len(held_in)} held out; {count_parameters(model) / 1e6:.1f}M parameters; "
         f"reduction {cfg.reduction}, mix {cfg.mix.strategy}, {'packed' if cfg.packing else 'padded'} batches")
    baseline = _baseline(cfg, model, tokenizer, tasks, out / "baseline_scores.json", resume)
    if cfg.lora.enabled:
        model = _with_lora(model, cfg)
    if not resume and dist.is_main():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    encoded = {t.name: encode_chats(tokenizer, [ex["messages"] for ex in t.splits["train"]]) for t in held_in}
    if cfg.lm_windows:
        encoded[CORPUS_TASK] = _corpus_examples(cfg, tokenizer, encoded, out)
    steps = plan_steps(encoded, cfg)
    task_ids = {name: i for i, name in enumerate(encoded)}
    pad = pad_id(tokenizer)

    def batches(step: int) -> list[SFTBatch]:
        return build_step(steps[step], encoded, task_ids, cfg, pad)

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        scores = score_tasks(model, tokenizer, tasks, "val", cfg.eval.samples_per_task, cfg.eval.max_new_tokens,
                             cfg.eval.batch_size, cfg.train.seq_len)
        metric = {t.name: t.metric for t in tasks}
        return {**{f"eval/{k}/{metric[k]}": v for k, v in scores.items()},
                **{f"eval/{k}": v for k, v in summarize(scores, tasks).items()}}

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        result = fit(model, sft_step, batches, cfg.train, cfg.optim, out, logger,
                     evaluate=evaluate if cfg.eval.samples_per_task else None, resume=resume, desc="sft",
                     flops_per_token=training_flops_per_token(count_parameters(model, non_embedding=True)))
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 scores and saves
        return out
    model = result.model
    final = _test_scores(cfg, model, tokenizer, tasks, "sft model")
    save_model_folder(out, model, tokenizer, cfg, tasks)
    report = {"test": final, "baseline": baseline, **{f"sft_{k}": v for k, v in summarize(final, tasks).items()}}
    if baseline:
        report.update({f"baseline_{k}": v for k, v in summarize(baseline, tasks).items()})
    atomic_write_json(out / "scores.json", report, indent=1)
    info(score_table(tasks, final, baseline))
    mark_complete(out, step=result.step, **{k: v for k, v in report.items() if isinstance(v, float)})
    return out


def _corpus_examples(cfg: SFTConfig, tokenizer, encoded: dict[str, list], out: Path
                     ) -> list[tuple[list[int], list[bool]]]:
    """The corpus task (`lm_windows`): the first windows of the corpus's training documents, tokenized
    as pretraining tokenized them, every token but a window's first carrying loss."""
    if not cfg.lm_corpus:
        raise UserError("sft: lm_windows is set but lm_corpus names no corpus file; give lm_corpus=[FILE] "
                        "or set lm_windows=0")
    if CORPUS_TASK in encoded:
        raise UserError(f"sft: a task is named '{CORPUS_TASK}', the name of the lm_windows task; rename it "
                        "or set lm_windows=0")
    with dist.main_first():  # rank 0 tokenizes; the others read its shards
        shard, _, _ = build_shards(cfg.lm_corpus, tokenizer, cfg.tokenizer or cfg.model.path, out / "lm_shards",
                                   cfg.lm_val_fraction, progress=cfg.train.progress)
    windows = shard.sequential_windows(cfg.lm_windows, cfg.lm_window).tolist()
    info(f"sft: task '{CORPUS_TASK}': {len(windows):,} windows of {cfg.lm_window} corpus tokens")
    return [(ids, [True] * len(ids)) for ids in windows]


def sft_step(model: torch.nn.Module, batch: SFTBatch) -> tuple[torch.Tensor, int]:
    """Σ_e w_e · S_e over this micro-batch's examples (weights from the whole step), as Σ_k w_owner(k) NLL_k
    over the answer tokens: the output head and cross-entropy run on those positions only, in chunks
    (objectives/linear_ce.py), so no (tokens, vocabulary) logits tensor is kept for the backward pass."""
    decoder, head = lm_parts(model)
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids).last_hidden_state      # (B, T, H)
    keep, targets, owners = loss_positions(batch.labels, batch.example_index)
    loss, _ = linear_cross_entropy(hidden[:, :-1][keep], head, targets, batch.weights[owners])
    return loss, batch.input_ids.numel()


def answer_nll(model: torch.nn.Module, batch: SFTBatch, num_examples: int) -> torch.Tensor:
    """(num_examples,) S_e, the summed NLL of each example's answer tokens (indexed by
    batch.example_index); the output head runs only where a token carries loss."""
    decoder, head = lm_parts(model)
    hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     position_ids=batch.position_ids).last_hidden_state      # (B, T, H)
    keep, targets, owners = loss_positions(batch.labels, batch.example_index)
    logits = head(hidden[:, :-1][keep])                                     # (K, V)
    return example_losses_at(logits, targets, owners, num_examples)[0]


def plan_steps(encoded: dict[str, list], cfg: SFTConfig) -> list[list[list[Key]]]:
    """Every optimizer step's micro-batches of (task, example) keys, fixed up front so that a
    resumed run sees the same data: the mixture's stream, cut into micro-batches of rows. Under
    torchrun a step has grad_accum x world micro-batches, of which each rank builds its own."""
    sizes = {name: len(examples) for name, examples in encoded.items()}
    stream = ((key, len(encoded[key[0]][key[1]][0])) for key in iter_mixture(sizes, cfg.mix, cfg.train.seed))
    micro = plan_micro_batches(stream, cfg.train.batch_size, cfg.train.seq_len, cfg.packing)
    t = cfg.train
    return [list(itertools.islice(micro, t.grad_accum * dist.world_size())) for _ in range(t.max_steps)]


def build_step(step: list[list[Key]], encoded: dict[str, list], task_ids: dict[str, int],
               cfg: SFTConfig, pad_id: int) -> list[SFTBatch]:
    """This rank's micro-batches of the step (all of them in one process), each carrying the
    step-level weights of the chosen reduction over every example of the step (all ranks')."""
    starts = list(itertools.accumulate((len(keys) for keys in step), initial=0))  # global example numbers
    batches = []
    for m in dist.local(len(step)):
        examples = [encoded[task][i] for task, i in step[m]]
        if cfg.packing:
            batch = pack_batch(examples, cfg.train.seq_len, pad_id, starts[m])
        elif cfg.unpad:
            batch = unpad_batch(examples, pad_id, starts[m], cfg.train.seq_len)
        else:
            batch = pad_batch(examples, pad_id, starts[m], cfg.train.seq_len)
        batches.append(replace(batch, tasks=tuple(sorted({task for task, _ in step[m]}))))
    tokens = torch.zeros(starts[-1], dtype=torch.long)  # loss tokens of each example, after truncation
    for b in batches:
        has_label = b.labels[:, 1:] != IGNORE_INDEX
        tokens.index_add_(0, b.example_index[:, 1:][has_label], torch.ones(int(has_label.sum()), dtype=torch.long))
    if dist.active():  # each rank counted its own examples
        tokens = torch.tensor(dist.all_reduce_sum(tokens.tolist()), dtype=torch.long)
    tasks = torch.tensor([task_ids[task] for keys in step for task, _ in keys])
    weights = STEP_WEIGHTS[Reduction(cfg.reduction)](tasks, tokens)
    return [replace(b, weights=weights) for b in batches]


def _test_scores(cfg: SFTConfig, model, tokenizer, tasks: list[TaskData], who: str) -> dict[str, float]:
    info(f"sft: scoring the {who} on {sum(len(t.splits['test']) for t in tasks):,} test examples")
    return score_tasks(model, tokenizer, tasks, "test", None, cfg.eval.max_new_tokens, cfg.eval.batch_size,
                       cfg.train.seq_len)


def _baseline(cfg: SFTConfig, model, tokenizer, tasks: list[TaskData], path: Path, resume: bool
              ) -> dict[str, float] | None:
    """The start model's test scores, kept beside the checkpoints so a resumed run reuses them."""
    if not cfg.eval.baseline:
        return None
    if resume and path.is_file():
        return json.loads(path.read_text())
    scores = _test_scores(cfg, model, tokenizer, tasks, "start model")  # on every rank: none waits
    if dist.is_main():
        atomic_write_json(path, scores, indent=1)
    return scores


def _with_lora(model, cfg: SFTConfig):
    from peft import LoraConfig, get_peft_model
    lora = cfg.lora
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [m for m in lora.target_modules if m not in names]
    if missing:
        raise UserError(f"lora.target_modules: {', '.join(missing)} not in the model (its linear layers "
                        f"include: {', '.join(sorted(n for n in names if n.endswith('proj'))[:12])})")
    model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                             target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info(f"sft: LoRA r={lora.r} alpha={lora.alpha} on {', '.join(lora.target_modules)}: "
         f"{trainable / 1e6:.2f}M trainable parameters")
    return model


def save_model_folder(out: Path, model, tokenizer, cfg: SFTConfig, tasks: list[TaskData]) -> None:
    """The HF folder (LoRA merged in; the adapter alone under adapter/) and tasks.json for classify()."""
    model = model.cpu()
    if cfg.lora.enabled:
        with atomic_dir(out / "adapter") as tmp:
            model.save_pretrained(tmp)
        model = model.merge_and_unload()
    save_hf_folder(out, model, tokenizer, dump_config(cfg))
    atomic_write_json(out / "tasks.json", task_metadata(tasks), indent=1)


def score_table(tasks: list[TaskData], final: dict[str, float], baseline: dict[str, float] | None) -> str:
    """Per-task test scores, start model vs SFT model, held-in then held-out."""
    w = max(len(t.name) for t in tasks) + 1
    lines = [f"{'task':<{w}} {'metric':<12} {'start':>6} {'sft':>6}"]
    for held_out in (False, True):
        group = [t for t in tasks if t.held_out == held_out]
        if not group:
            continue
        lines.append(f"-- {'held-out (zero-shot)' if held_out else 'held-in'} --")
        for t in group:
            base = f"{baseline[t.name]:6.3f}" if baseline and t.name in baseline else f"{'-':>6}"
            lines.append(f"{t.name:<{w}} {t.metric:<12} {base} {final.get(t.name, float('nan')):6.3f}")
        base_mean = f"{_mean(baseline, group):6.3f}" if baseline else f"{'-':>6}"
        lines.append(f"{'mean':<{w}} {'':<12} {base_mean} {_mean(final, group):6.3f}")
    return "\n".join(lines)


def _mean(scores: dict[str, float], group: list[TaskData]) -> float:
    return sum(scores.get(t.name, 0.0) for t in group) / len(group)
