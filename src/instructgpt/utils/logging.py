"""Metrics: JSONL always, TensorBoard when installed; console messages."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from instructgpt.utils.io import atomic_write_text, finite


def is_main_process() -> bool:
    """Rank 0 under torchrun (read from the environment: no torch import), or the only process."""
    return os.environ.get("RANK", "0") == "0"


def info(msg: str) -> None:
    """A console message, from rank 0 only under torchrun."""
    if is_main_process():
        print(f"[instructgpt] {msg}", file=sys.stderr, flush=True)


class MetricsLogger:
    """Appends `{"step", "time", **metrics}` lines to `path`; mirrors them to TensorBoard.
    Under torchrun only rank 0 writes; on the other ranks every method does nothing."""

    def __init__(self, path: str | Path, tb_dir: str | Path | None = None):
        self.path = Path(path)
        self.enabled = is_main_process()
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(tb_dir))
            except ImportError:  # tensorboard is optional
                self._tb = None

    def rewind(self, step: int) -> None:
        """Drop lines after `step`: a resumed run rewrites what the interrupted one logged past it."""
        if not self.enabled:
            return
        self._file.close()
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if hasattr(v, "__float__") else v) for k, v in metrics.items()}
        self._file.write(json.dumps(finite({"step": step, "time": round(time.time(), 3), **clean})) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in clean.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
