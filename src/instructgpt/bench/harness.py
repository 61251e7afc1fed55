"""The side-by-side machinery every `instructgpt bench` suite shares: alternating rounds, peak
memory, MFU against the measured matmul peak, and the results table (JSON and Markdown)."""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from instructgpt.train.flops import measure_peak_flops
from instructgpt.utils.logging import info


@dataclass
class Steps:
    """What one round of one contender measured: per timed step, its seconds, units of work
    (tokens, pairs, ...) and model FLOPs actually executed."""

    seconds: list[float] = field(default_factory=list)
    units: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    split: dict[str, list[float]] = field(default_factory=dict)  # e.g. generation / learning seconds

    def extend(self, other: "Steps") -> None:
        self.seconds += other.seconds
        self.units += other.units
        self.flops += other.flops
        self.peak_mb = max(self.peak_mb, other.peak_mb)
        for key, values in other.split.items():
            self.split.setdefault(key, []).extend(values)


@dataclass
class Row:
    """One line of the table: our stage against the TRL equivalent on the same work."""

    work: str
    size: str
    unit: str                 # "tokens/s", "pairs/s", "s/step"
    ours: float
    trl: float | None
    ratio: float | None       # ours/TRL, > 1 = we are faster (for s/step: TRL's time / ours)
    goal: float | None
    precision: str
    ours_peak_mb: float
    trl_peak_mb: float | None
    ours_mfu: dict[str, float]  # against the fp32 and bf16 peaks
    trl_mfu: dict[str, float]
    steps: int                  # timed steps per contender
    notes: str = ""
    extra: dict = field(default_factory=dict)


def setup(precision: str) -> tuple[str, dict[str, float]]:
    """The precision a suite runs in (`auto` resolved as training resolves it) and the machine's peaks."""
    from instructgpt.train.flops import resolve_precision
    from instructgpt.utils.device import resolve_device
    device = resolve_device("auto")
    return resolve_precision(device, precision), peaks(device.type)


def peaks(device: str = "cpu") -> dict[str, float]:
    """The machine's measured peak matmul FLOP/s in fp32 and bf16 (cached per process)."""
    return {"fp32": measure_peak_flops(device, "float32"), "bf16": measure_peak_flops(device, "bfloat16")}


def mfu(steps: Steps, peak: dict[str, float]) -> dict[str, float]:
    if not steps.flops or not sum(steps.seconds):
        return {}
    rate = sum(steps.flops) / sum(steps.seconds)
    return {p: rate / v for p, v in peak.items()}


def median_rate(steps: Steps) -> float:
    """Median over timed steps of units per second."""
    return statistics.median(u / s for u, s in zip(steps.units, steps.seconds))


def median_seconds(steps: Steps) -> float:
    return statistics.median(steps.seconds)


def alternate(contenders: dict[str, Callable[[], Steps]], rounds: int) -> dict[str, Steps]:
    """Run each contender's round in turn, `rounds` times (each round warms up itself), so a drift
    in the machine's speed hits all of them alike."""
    out = {name: Steps() for name in contenders}
    for r in range(rounds):
        for name, run_round in contenders.items():
            with PeakMemory() as memory:
                got = run_round()
            got.peak_mb = max(got.peak_mb, memory.peak_mb)  # a worker process reports its own
            out[name].extend(got)
            info(f"bench:   round {r + 1}/{rounds} {name}: median {statistics.median(got.seconds) * 1e3:.0f} ms/step "
                 f"over {len(got.seconds)} steps")
    return out


class PeakMemory:
    """Peak memory above the level at entry, in MB: CUDA's allocator peak on a GPU; on a CPU the
    bytes malloc has handed out and not taken back (glibc's mallinfo2: what torch's CPU tensors
    hold, not what the allocator keeps cached), sampled every 10 ms (a sample costs ~0.15 ms and
    takes malloc's locks); the resident set where mallinfo2 is missing."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        self._start = self._peak = _in_use()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, _in_use())

    def __exit__(self, *exc) -> None:
        if torch.cuda.is_available():
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._start) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = (max(self._peak, _in_use()) - self._start) / 2**20


def _in_use() -> int:
    if _MALLINFO is not None:
        info = _MALLINFO()
        return info.uordblks + info.hblkhd  # in use: small blocks + mmapped large ones
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mallinfo():
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        function = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc < 2.33
        return None
    function.restype = MallInfo2
    return function


_MALLINFO = _mallinfo()


def row(work: str, size: str, unit: str, measured: dict[str, Steps], peak: dict[str, float], precision: str,
        goal: float | None = None, notes: str = "", **extra) -> Row:
    """A table row from the alternating measurement of "ours" and (when present) "trl"."""
    ours, trl = measured["ours"], measured.get("trl")
    per_second = unit != "s/step"
    value = median_rate if per_second else median_seconds
    ours_v, trl_v = value(ours), value(trl) if trl else None
    ratio = None if trl_v is None else (ours_v / trl_v if per_second else trl_v / ours_v)
    return Row(work, size, unit, ours_v, trl_v, ratio, goal, precision, ours.peak_mb, trl.peak_mb if trl else None,
               mfu(ours, peak), mfu(trl, peak) if trl else {}, len(ours.seconds), notes,
               {**extra, **({"split": {k: statistics.median(v) for k, v in ours.split.items()}} if ours.split else {}),
                **({"trl_split": {k: statistics.median(v) for k, v in trl.split.items()}} if trl and trl.split else {})})


def table(rows: list[Row], peak: dict[str, float]) -> str:
    """The Markdown table the CLI prints and writes."""
    lines = [f"Peak matmul measured here: fp32 {peak['fp32'] / 1e9:,.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:,.0f} GFLOP/s; "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}. Rates are medians over timed steps of "
             f"alternating rounds; MFU is against the peak of the row's precision; peak MB is memory above the "
             f"level at the start of a round.", "",
             "| work | size | precision | unit | ours | TRL | ours/TRL | goal | peak MB ours / TRL | MFU ours / TRL |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fmt = (lambda v: f"{v:.2f}") if r.unit == "s/step" else (lambda v: f"{v:,.1f}" if v < 100 else f"{v:,.0f}")
        trl = fmt(r.trl) if r.trl is not None else "–"
        ratio = f"**{r.ratio:.2f}×**" if r.ratio is not None else "–"
        goal = f"≥ {r.goal:g}×" + (" ✓" if r.ratio is not None and r.ratio >= r.goal else " ✗") if r.goal else "–"
        mem = f"{r.ours_peak_mb:,.0f} / " + (f"{r.trl_peak_mb:,.0f}" if r.trl_peak_mb is not None else "–")
        lines.append(f"| {r.work} | {r.size} | {r.precision} | {r.unit} | {fmt(r.ours)} | {trl} | {ratio} | {goal} | "
                     f"{mem} | {_mfu(r.ours_mfu, r.precision)} / {_mfu(r.trl_mfu, r.precision)} |")
    notes = list(dict.fromkeys(f"- {r.work} ({r.size}): {r.notes}" for r in rows if r.notes))  # one per size, not per precision
    return "\n".join(lines + ([""] + notes if notes else []))


def _mfu(m: dict[str, float], precision: str) -> str:
    """MFU against the peak of the precision the row ran in (the JSON holds both)."""
    return f"{m[precision]:.0%}" if m else "–"


def write(name: str, rows: list[Row], peak: dict[str, float], out: str | Path) -> Path:
    """benchmarks/results/<name>.json and .md; prints the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = table(rows, peak)
    print("\n" + md)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    (out / f"{name}.md").write_text(f"# instructgpt bench {name} ({stamp})\n\n{md}\n")
    (out / f"{name}.json").write_text(json.dumps(
        {"suite": name, "time": stamp, "peak_flops": peak, "threads": torch.get_num_threads(),
         "torch": torch.__version__, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    info(f"bench {name}: results -> {out / (name + '.json')} and .md")
    return out / f"{name}.md"
