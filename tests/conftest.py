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


def write_task_files(folder: Path, tasks: dict) -> Path:
    """One task JSON per entry of {name: (kind, cluster, metric, instructions, labels, [(input, output)])}."""
    import json
    folder.mkdir(parents=True, exist_ok=True)
    for name, (kind, cluster, metric, instructions, labels, examples) in tasks.items():
        (folder / f"{name}.json").write_text(json.dumps({
            "name": name, "kind": kind, "cluster": cluster, "metric": metric, "instructions": instructions,
            "labels": labels, "examples": [{"input": i, "output": o} for i, o in examples]}))
    return folder


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300):
    """Run `python -m instructgpt ARGS` in a subprocess; returns CompletedProcess."""
    import subprocess
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "instructgpt", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


def chromium_driver(profile: Path, size: str = "1200,1600"):
    """Headless Debian Chromium under selenium, with no network chatter (no browser download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", f"--window-size={size}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny causal LM folder with our ChatML tokenizer and a tasks.json, as `instructgpt sft` writes
    one (untrained: the tests are about plumbing, not quality)."""
    import json
    import torch
    from instructgpt.config import ModelConfig
    from instructgpt.models.build import build_model
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("chat") / "tiny-chat"
    model = build_model(ModelConfig(preset="tiny", max_position_embeddings=256), tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tasks.json").write_text(json.dumps({
        "mood": {"name": "mood", "kind": "classification", "instructions": ["Is this happy or sad?"],
                 "labels": ["happy", "sad"]},
        "shop_qa": {"name": "shop_qa", "kind": "qa", "instructions": ["Answer from the notice."], "labels": None}}))
    return out
