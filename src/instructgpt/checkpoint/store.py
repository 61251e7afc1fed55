"""Atomic checkpoints (`checkpoints/step-N/`) and final HF model folders with a completion mark."""
from __future__ import annotations

import hashlib
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
from instructgpt.utils.logging import info

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

    The manifest, written last inside the temp folder, lists every file's size and SHA-256; a
    folder without it, or with a file of another size or content, is not a valid checkpoint.
    Retention keeps the newest `keep` valid checkpoints and removes only what is older than
    them, so it never removes the only valid one (e.g. beside an invalid step-N of a higher N).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(root)
    target = root / f"step-{step}"
    with atomic_dir(target) as tmp:
        save_model(unwrap(model), str(tmp / "model.safetensors"))
        torch.save(trainer_state, tmp / "trainer_state.pt")
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in tmp.iterdir()}
        atomic_write_json(tmp / "manifest.json", {"step": step, "files": files})
    _prune(root, keep)
    return target


def _prune(root: Path, keep: int) -> None:
    found = list_checkpoints(root)
    kept = [(step, path) for step, path in reversed(found) if checkpoint_problem(path, checksums=False) is None][:keep]
    if not kept:
        return
    oldest_kept = min(step for step, _ in kept)
    for step, path in found:
        if step < oldest_kept:
            shutil.rmtree(path, ignore_errors=True)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(found)


def checkpoint_problem(path: Path, checksums: bool = True) -> str | None:
    """None for a whole checkpoint, else what is wrong with it: no manifest, a missing file, a
    size or (with `checksums`) a SHA-256 that differs from the manifest's."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return "no manifest.json (a partial write)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable manifest.json ({e})"
    for name, expected in files.items():
        expected = expected if isinstance(expected, dict) else {"bytes": expected}  # manifests before checksums
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if (size := file.stat().st_size) != expected["bytes"]:
            return f"{name} has {size} bytes, the manifest says {expected['bytes']}"
        if checksums and "sha256" in expected and _sha256(file) != expected["sha256"]:
            return f"{name} does not match its SHA-256 in the manifest"
    return None


def is_valid_checkpoint(path: Path) -> bool:
    return checkpoint_problem(path) is None


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest whole `step-N` folder; each newer one that fails the manifest check (sizes and
    SHA-256) is skipped with a message."""
    for _, path in reversed(list_checkpoints(Path(root))):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        info(f"{path}: incomplete or corrupt checkpoint: {problem}; skipped")
    return None


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load weights into `model`; return the trainer state (optimizer, scheduler, RNG, step)."""
    path = Path(path)
    problem = checkpoint_problem(path, checksums=False)  # latest_checkpoint verified the checksums
    if problem is not None:
        raise UserError(f"{path}: incomplete or corrupt checkpoint ({problem}); delete it")
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
    except OSError as e:  # a full disk: no complete.json, so the folder never looks finished
        raise UserError(f"{out}: could not write the model folder ({e.strerror or e}); it is not marked "
                        f"complete. Free space and rerun the stage (checkpoints are kept)") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_complete(out: str | Path, **info: Any) -> None:
    atomic_write_json(Path(out) / COMPLETE, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info})


def is_complete(out: str | Path) -> bool:
    return (Path(out) / COMPLETE).is_file()
