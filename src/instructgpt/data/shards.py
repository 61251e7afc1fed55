"""Token shards: a corpus tokenized once into flat uint16/uint32 files read via numpy.memmap."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from instructgpt.data.records import iter_documents
from instructgpt.utils.io import atomic_write_json
from instructgpt.utils.logging import info

DOCS_PER_BATCH = 1000  # documents tokenized per call: bounded memory however large the corpus


def corpus_fingerprint(paths: Iterable[str | Path], tokenizer_dir: str, val_fraction: float) -> str:
    """Changes when a file, the tokenizer or the split changes, so stale shards are rebuilt."""
    h = hashlib.sha256(f"{tokenizer_dir}|{val_fraction}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def write_shards(documents: Iterable[str], tokenizer, out_dir: str | Path, val_fraction: float,
                 fingerprint: str = "", progress: bool = True) -> dict:
    """Tokenize `documents` (EOS after each) into `train.bin` and `val.bin` in `out_dir`.

    Every round(1/val_fraction)-th document goes to validation. Streams: memory stays flat.
    Returns the meta dict saved as `meta.json` (written last: its presence means complete).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.uint32
    every = max(2, round(1 / val_fraction))
    eos = tokenizer.eos_token_id
    counts = {"train": 0, "val": 0}
    unigram = np.zeros(len(tokenizer), dtype=np.int64)
    files = {split: open(out / f"{split}.bin.tmp", "wb") for split in counts}
    try:
        index = 0
        bar = tqdm(desc="tokenizing", unit=" docs", disable=not progress)
        for docs in list_batches(documents, DOCS_PER_BATCH):
            encoded = tokenizer(docs, add_special_tokens=False)["input_ids"]
            for split in counts:
                chosen = [ids + [eos] for i, ids in enumerate(encoded, index)
                          if (split == "val") == (i % every == every - 1)]
                if not chosen:
                    continue
                arr = np.concatenate([np.asarray(ids, dtype=dtype) for ids in chosen])
                files[split].write(arr.tobytes())
                counts[split] += len(arr)
                if split == "train":
                    unigram += np.bincount(arr, minlength=len(unigram))
            index += len(encoded)
            bar.update(len(encoded))
        bar.close()
    finally:
        for f in files.values():
            f.close()
    for split in counts:
        os.replace(out / f"{split}.bin.tmp", out / f"{split}.bin")
    meta = {"dtype": np.dtype(dtype).name, "train_tokens": counts["train"], "val_tokens": counts["val"],
            "documents": index, "vocab_size": len(tokenizer), "fingerprint": fingerprint,
            "unigram_entropy_nats": unigram_entropy(unigram)}
    atomic_write_json(out / "meta.json", meta)
    return meta


def build_shards(paths: list[str], tokenizer, tokenizer_dir: str, out_dir: str | Path, val_fraction: float,
                 progress: bool = True) -> tuple["TokenShard", "TokenShard", dict]:
    """(train, val, meta) shards of the corpus files, tokenized only when a file or the tokenizer changed."""
    fingerprint = corpus_fingerprint(paths, str(Path(tokenizer_dir).resolve()), val_fraction)
    if not shards_ready(out_dir, fingerprint):
        info(f"tokenizing {len(paths)} corpus file(s) into {out_dir}")
        write_shards(iter_documents(paths), tokenizer, out_dir, val_fraction, fingerprint, progress=progress)
    return load_shards(out_dir)


def list_batches(items: Iterable[str], size: int):
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def unigram_entropy(counts: np.ndarray) -> float:
    """H = -Σ p log p in nats per token: the loss of the best model that ignores context."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@dataclass
class TokenShard:
    """A flat token file opened read-only through numpy.memmap."""

    path: Path
    dtype: str

    def __post_init__(self):
        self.tokens = np.memmap(self.path, dtype=self.dtype, mode="r")

    def __len__(self) -> int:
        return len(self.tokens)

    def random_windows(self, rng: np.random.Generator, batch_size: int, length: int) -> np.ndarray:
        """(batch_size, length) windows at random offsets."""
        if len(self) <= length:
            raise ValueError(f"{self.path}: {len(self)} tokens, fewer than one window of {length + 1}")
        starts = rng.integers(0, len(self) - length, size=batch_size)
        return np.stack([self.tokens[s:s + length] for s in starts]).astype(np.int64)

    def sequential_windows(self, n: int, length: int) -> np.ndarray:
        """Up to `n` non-overlapping windows from the start: a fixed evaluation set."""
        n = min(n, len(self) // length)
        if n == 0:
            raise ValueError(f"{self.path}: {len(self)} tokens, fewer than one window of {length}")
        return np.asarray(self.tokens[:n * length], dtype=np.int64).reshape(n, length)


def load_shards(out_dir: str | Path) -> tuple[TokenShard, TokenShard, dict]:
    meta = json.loads((Path(out_dir) / "meta.json").read_text())
    return (TokenShard(Path(out_dir) / "train.bin", meta["dtype"]),
            TokenShard(Path(out_dir) / "val.bin", meta["dtype"]), meta)


def shards_ready(out_dir: str | Path, fingerprint: str) -> bool:
    meta = Path(out_dir) / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("fingerprint") == fingerprint
