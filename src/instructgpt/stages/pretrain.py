"""Stage `pretrain`: self-supervised causal LM (`clm`) or masked LM (`mlm`) on token shards."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from instructgpt.checkpoint import mark_complete, save_hf_folder
from instructgpt.config import PretrainConfig, UserError, dump_config, require
from instructgpt.data.lm import LMBatch, mask_tokens, step_rng
from instructgpt.data.shards import build_shards
from instructgpt.models.build import build_model, count_parameters
from instructgpt.models.parts import lm_parts
from instructgpt.objectives import causal_lm_loss, masked_lm_loss
from instructgpt.objectives.linear_ce import linear_cross_entropy
from instructgpt.objectives.lm import next_token_targets
from instructgpt.tokenizer.train import load_tokenizer
from instructgpt.train import fit
from instructgpt.train.flops import training_flops_per_token
from instructgpt.utils import dist
from instructgpt.utils.io import require_writable
from instructgpt.utils.logging import MetricsLogger, info
from instructgpt.utils.seed import set_seed

EVAL_SEED = 1234  # fixed masking for MLM evaluation, so val loss is comparable across steps


def run(cfg: PretrainConfig, resume: bool = False) -> Path:
    """Tokenize the corpus into shards (once), train, save an HF folder with the tokenizer."""
    require(cfg, "out", "corpus")
    check_config(cfg)
    dist.setup(cfg.train.distributed)
    out = Path(cfg.out)
    require_writable(out)  # before any work: not at the first checkpoint
    tokenizer_path = cfg.tokenizer or cfg.model.path
    tokenizer = load_tokenizer(tokenizer_path)
    with dist.main_first():  # rank 0 tokenizes; the others read its shards
        train_shard, val_shard, entropy = prepare_shards(cfg, tokenizer, tokenizer_path, out / "shards")

    set_seed(cfg.train.seed)  # the initial weights depend on the seed only
    model = build_model(cfg.model, tokenizer)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise UserError(f"model vocabulary ({model.get_input_embeddings().num_embeddings}) is smaller "
                        f"than the tokenizer's ({len(tokenizer)}); key model.path / pretrain.tokenizer")
    non_embedding = count_parameters(model, non_embedding=True)
    info(f"pretrain: {cfg.objective} on {type(model).__name__}, {count_parameters(model) / 1e6:.2f}M "
         f"parameters ({non_embedding / 1e6:.2f}M non-embedding)")
    if not resume and dist.is_main():
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    corrupt = _corruption(cfg, tokenizer)
    loss_fn = causal_lm_loss if cfg.objective == "clm" else masked_lm_loss
    t = cfg.train

    def batches(step: int) -> list[LMBatch]:
        """This rank's micro-batches of `step`: random windows, corrupted for MLM, from (seed, step,
        micro-batch) alone, so any number of processes sees the same global batch."""
        rngs = [step_rng(t.seed, step, m) for m in dist.local(t.grad_accum * dist.world_size())]
        return [corrupt(torch.from_numpy(train_shard.random_windows(rng, t.batch_size, t.seq_len)), rng)
                for rng in rngs]

    logger = MetricsLogger(out.parent / "metrics" / f"{out.name}.jsonl", out.parent / "tb" / out.name)
    try:
        step = _clm_step if cfg.objective == "clm" else (lambda m, b: _step(m, b, loss_fn))
        result = fit(model, step, batches, t, cfg.optim, out, logger,
                     evaluate=_evaluator(cfg, val_shard, corrupt, loss_fn), resume=resume,
                     desc=f"pretrain ({cfg.objective})", flops_per_token=training_flops_per_token(non_embedding))
    finally:
        logger.close()
    if result.model is None:  # not rank 0: rank 0 saves
        return out
    model = result.model
    val_loss = result.last_eval["val/loss"]
    below = 1 - val_loss / entropy
    info(f"pretrain: val loss {val_loss:.3f} nats/token vs unigram entropy {entropy:.3f} "
         f"({abs(below):.1%} {'below' if below >= 0 else 'above'})")
    save_hf_folder(out, model.cpu(), tokenizer, dump_config(cfg))
    mark_complete(out, step=result.step, val_loss=val_loss, unigram_entropy=entropy, below_unigram=below)
    return out


def prepare_shards(cfg: PretrainConfig, tokenizer, tokenizer_path: str, shards_dir: Path):
    """(train shard, val shard, unigram entropy), tokenizing the corpus only when it changed."""
    train_shard, val_shard, meta = build_shards(cfg.corpus, tokenizer, tokenizer_path, shards_dir, cfg.val_fraction,
                                                cfg.train.progress)
    entropy = meta["unigram_entropy_nats"]
    info(f"pretrain: {meta['train_tokens']:,} train / {meta['val_tokens']:,} val tokens; "
         f"unigram entropy {entropy:.3f} nats/token")
    return train_shard, val_shard, entropy


def _evaluator(cfg: PretrainConfig, val_shard, corrupt, loss_fn):
    """Mean loss per loss token on fixed validation windows (MLM masks drawn from a fixed seed)."""
    val = torch.from_numpy(val_shard.sequential_windows(cfg.train.eval_batches * cfg.train.batch_size,
                                                        cfg.train.seq_len))

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        total, count = 0.0, 0
        rng = np.random.default_rng(EVAL_SEED)
        device = next(model.parameters()).device
        for chunk in val.split(cfg.train.batch_size):
            batch = corrupt(chunk, rng).to(device)
            loss, n = loss_fn(model(input_ids=batch.input_ids).logits, batch.labels)
            total, count = total + loss.item(), count + n
        mean = total / max(count, 1)
        return {"val/loss": mean, "val/ppl": float(np.exp(min(mean, 50)))}
    return evaluate


def check_config(cfg: PretrainConfig) -> None:
    for path in cfg.corpus:
        if not Path(path).is_file():
            raise UserError(f"{path}: corpus file not found (key corpus)")
    if (cfg.objective == "mlm") != (cfg.model.arch == "bert") and not cfg.model.path:
        raise UserError(f"objective '{cfg.objective}' needs model.arch="
                        f"{'bert' if cfg.objective == 'mlm' else 'llama'} (got '{cfg.model.arch}')")
    if not (cfg.tokenizer or cfg.model.path):
        raise UserError("PretrainConfig: key 'tokenizer' is required (or model.path with a tokenizer)")
    if cfg.train.seq_len > cfg.model.max_position_embeddings and not cfg.model.path:
        raise UserError(f"train.seq_len {cfg.train.seq_len} exceeds model.max_position_embeddings "
                        f"{cfg.model.max_position_embeddings}")


def _step(model: torch.nn.Module, batch: LMBatch, loss_fn) -> tuple[torch.Tensor, int]:
    loss, _ = loss_fn(model(input_ids=batch.input_ids).logits, batch.labels)
    return loss, batch.input_ids.numel()


def _clm_step(model: torch.nn.Module, batch: LMBatch) -> tuple[torch.Tensor, int]:
    """`_step` with `causal_lm_loss`, the output head and the cross-entropy in chunks
    (objectives/linear_ce.py): no (B·T, V) logits tensor is kept for the backward pass. The demo's
    pretraining (tiny preset, 16 × 256 tokens, bf16) ran 150 steps in 35–36 s against 43–44 s
    through the full logits."""
    decoder, head = lm_parts(model)
    hidden = decoder(input_ids=batch.input_ids).last_hidden_state                # (B, T, H)
    targets, keep = next_token_targets(batch.labels)                             # (B*(T-1),)
    loss, _ = linear_cross_entropy(hidden[:, :-1].reshape(-1, hidden.size(-1))[keep], head, targets[keep])
    return loss, batch.input_ids.numel()


def _corruption(cfg: PretrainConfig, tokenizer):
    """ids (B, T) + rng -> LMBatch: unchanged for causal LM, BERT-masked for MLM."""
    if cfg.objective == "clm":
        return lambda ids, rng: LMBatch(ids, ids.clone())
    return lambda ids, rng: mask_tokens(ids, rng, tokenizer.mask_token_id, len(tokenizer),
                                        tokenizer.all_special_ids, cfg.mlm_probability)
