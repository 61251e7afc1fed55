"""Ctrl-C that is never lost.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be; raised inside
a `__del__` or a callback, it is printed as "Exception ignored" and the program runs on. The CLI
installs `handle_sigint`, which raises as usual and also remembers the request; loops call `check()`
at safe points (every optimizer step, every stage) so a swallowed interrupt still stops the run.
"""
from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def handle_sigint(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Use `handle_sigint` for SIGINT (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handle_sigint)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed since the last `reset()`."""
    if _requested.is_set():
        raise KeyboardInterrupt


def reset() -> None:
    _requested.clear()
