"""Atomic checkpoints (`checkpoints/step-N/`) and final HF model folders with a completion mark."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from instructgpt.config.errors import UserError
from instructgpt.utils.io import atomic_dir, atomic_write_json, atomic_write_text, clean_stale_tmp

STEP_DIR = re.compile(r"^step-(\d+)$")
COMPLETE = "complete.json"  # written last into a stage folder: its presence means the output is whole


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DDP / FSDP / torch.compile wrappers (no `_orig_mod.` keys on disk)."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, trainer_state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write `root/step-N/` in one rename: weights (safetensors), optimizer/scheduler/RNG, manifest.

    The manifest, written last inside the temp folder, lists every file's size; a folder
    without it, or with a file of another size, is not a valid checkpoint.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(root)
    target = root / f"step-{step}"
    with atomic_dir(target) as tmp:
        save_model(unwrap(model), str(tmp / "model.safetensors"))
        torch.save(trainer_state, tmp / "trainer_state.pt")
        files = {p.name: p.stat().st_size for p in tmp.iterdir()}
        atomic_write_json(tmp / "manifest.json", {"step": step, "files": files})
    for old in sorted(list_checkpoints(root))[:-keep]:
        shutil.rmtree(old[1], ignore_errors=True)
    return target


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found)


def is_valid_checkpoint(path: Path) -> bool:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        return all((path / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest valid `step-N` folder, skipping any that fail the manifest check."""
    for _, path in reversed(list_checkpoints(Path(root))):
        if is_valid_checkpoint(path):
            return path
    return None


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load weights into `model`; return the trainer state (optimizer, scheduler, RNG, step)."""
    path = Path(path)
    if not is_valid_checkpoint(path):
        raise UserError(f"{path}: incomplete or corrupt checkpoint (manifest check failed); delete it")
    load_model(unwrap(model), str(path / "model.safetensors"))
    return torch.load(path / "trainer_state.pt", weights_only=False)


def save_hf_folder(out: str | Path, model: torch.nn.Module, tokenizer, run_yaml: str) -> None:
    """Save model + tokenizer + run.yaml into `out` (which may hold checkpoints/), file by file
    atomically; `mark_complete` afterwards seals it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / COMPLETE).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".final.tmp-"))
    try:
        unwrap(model).save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / "run.yaml", run_yaml)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_complete(out: str | Path, **info: Any) -> None:
    atomic_write_json(Path(out) / COMPLETE, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info})


def is_complete(out: str | Path) -> bool:
    return (Path(out) / COMPLETE).is_file()
