"""Streaming: text deltas from a growing list of token ids, and the batcher that serves many callers.

`TextStream` turns token ids into text pieces that never need taking back: it holds back an
incomplete UTF-8 character (byte-level BPE splits them across tokens) and any tail that could be
the start of a stop string.

`Batcher` owns the engine on one worker thread: callers `submit` jobs from any thread; the worker
decodes up to `max_batch` waiting jobs together (each with its own sampling params) and reports
every token to its job as it comes. One model, many clients, no locks around the model.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from instructgpt.inference.engine import Completion, Engine, SamplingParams


class TextStream:
    """Feed token ids one at a time; get back the new text that is safe to show.

    Decoding is incremental, as vLLM does it: the new text is what decoding ids[prefix:] adds to
    decoding ids[prefix:read], so a token costs the same at any reply length, and tokenizers that
    drop a leading space when decoding a piece alone drop it from both.
    """

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.prefix = self.read = 0   # ids[:read] are in `text`; ids[prefix:read] give the context
        self.text = ""                # decoded so far
        self.sent = ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):  # nothing new, or half a character
            return ""
        self.text += after[len(before):]
        self.prefix, self.read = self.read, len(self.ids)
        text = self.text
        for s in self.stop:
            if s in text:
                text = text[:text.find(s)]
        hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return self._emit(text[:len(text) - hold])

    def finish(self, final_text: str) -> str:
        """What is left to send once the completion's final text is known."""
        return self._emit(final_text)

    def _emit(self, text: str) -> str:
        if not text.startswith(self.sent) or len(text) <= len(self.sent):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta


@dataclass
class Job:
    """One prompt to decode. `on_token` and `on_done` run on the worker thread: keep them short."""

    prompt: list[int]
    params: SamplingParams
    on_token: Callable[[int], None]
    on_done: Callable[[Completion | BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


class Busy(Exception):
    """The queue is full; the caller should retry later."""


class Batcher:
    """A worker thread that decodes queued jobs in batches of up to `max_batch`."""

    def __init__(self, engine: Engine, max_batch: int = 8, max_waiting: int = 256, wait_ms: float = 5.0):
        self.engine, self.max_batch, self.wait = engine, max_batch, wait_ms / 1000
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_waiting)
        self.batches = 0        # decoded so far (for tests and /health)
        self.largest_batch = 0
        self.thread = threading.Thread(target=self._loop, name="instructgpt-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self.jobs.maxsize} requests are already waiting") from None

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _take_batch(self, first: Job) -> list[Job]:
        batch, deadline = [first], time.monotonic() + self.wait
        while len(batch) < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # keep the stop signal for the loop
                break
            batch.append(job)
        return [j for j in batch if not j.cancelled.is_set()]

    def _loop(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = self._take_batch(first)
            if not batch:
                continue
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))

            def sink(row: int, token: int) -> bool:
                batch[row].on_token(token)
                return batch[row].cancelled.is_set()

            try:
                results = self.engine.complete_ids([j.prompt for j in batch], [j.params for j in batch], sink)
            except BaseException as e:  # reported to every caller; the worker lives on
                for job in batch:
                    job.on_done(e)
                continue
            for job, result in zip(batch, results):
                job.on_done(result)
