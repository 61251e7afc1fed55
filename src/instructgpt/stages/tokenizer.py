"""Stage `tokenizer`: train byte-level BPE on text and task files into an HF tokenizer folder."""
from __future__ import annotations

from pathlib import Path

from instructgpt.checkpoint import mark_complete
from instructgpt.config import TokenizerConfig, UserError, dump_config, require
from instructgpt.data.records import iter_documents
from instructgpt.tokenizer.train import build_bpe_tokenizer
from instructgpt.utils.io import atomic_dir, atomic_write_text
from instructgpt.utils.logging import info


def run(cfg: TokenizerConfig) -> Path:
    require(cfg, "out", "files")
    for f in cfg.files:
        if not Path(f).is_file():
            raise UserError(f"{f}: file not found (key tokenizer.files)")
    info(f"tokenizer: training byte-level BPE (vocab {cfg.vocab_size}) on {len(cfg.files)} file(s)")
    tokenizer = build_bpe_tokenizer(iter_documents(cfg.files), cfg.vocab_size, cfg.min_frequency)
    out = Path(cfg.out)
    with atomic_dir(out) as tmp:
        tokenizer.save_pretrained(str(tmp))
        atomic_write_text(tmp / "run.yaml", dump_config(cfg))
        mark_complete(tmp, vocab_size=len(tokenizer))
    info(f"tokenizer: {len(tokenizer)} tokens -> {out}")
    return out
