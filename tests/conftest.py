"""Shared fixtures: a small generated corpus and a tokenizer trained on it (once per session)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    from instructgpt.tasks.corpus import write_corpus
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    write_corpus(path, seed=0, n_bytes=400_000)
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, corpus_file) -> Path:
    from instructgpt.config import TokenizerConfig
    from instructgpt.stages import tokenizer as stage
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    stage.run(TokenizerConfig(out=str(out), files=[str(corpus_file)], vocab_size=1024))
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from instructgpt.tokenizer.train import load_tokenizer
    return load_tokenizer(tokenizer_dir)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300):
    """Run `python -m instructgpt ARGS` in a subprocess; returns CompletedProcess."""
    import subprocess
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "instructgpt", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
