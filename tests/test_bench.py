"""The benchmark machinery: ratios, tables, memory, precision choice, and our side of a suite."""
from __future__ import annotations

import json
import sys
import time

import pytest
import torch

from instructgpt.bench import harness
from instructgpt.bench.harness import Steps
from instructgpt.config import UserError


def _peak() -> dict[str, float]:
    return {"fp32": 100e9, "bf16": 1e9}


def test_rate_rows_divide_ours_by_trl_and_time_rows_trl_by_ours():
    fast, slow = Steps([0.5, 0.5, 0.5], [100, 100, 100], [50e9] * 3), Steps([1.0, 1.0, 2.0], [100, 100, 100], [50e9] * 3)
    rate = harness.row("SFT", "tiny", "tokens/s", {"ours": fast, "trl": slow}, _peak(), "fp32", goal=2.5)
    assert rate.ours == 200 and rate.trl == 100 and rate.ratio == 2.0      # medians of per-step rates
    assert rate.ours_mfu["fp32"] == pytest.approx(1.0)                     # 100 GFLOP/s executed of 100
    per_step = harness.row("PPO step", "tiny", "s/step", {"ours": fast, "trl": slow}, _peak(), "fp32", goal=2.0)
    assert per_step.ours == 0.5 and per_step.trl == 1.0 and per_step.ratio == 2.0
    text = harness.table([rate, per_step], _peak())
    assert "| SFT | tiny | fp32 | tokens/s | 200 | 100 | **2.00×** | ≥ 2.5× ✗ |" in text
    assert "| PPO step | tiny | fp32 | s/step | 0.50 | 1.00 | **2.00×** | ≥ 2× ✓ |" in text


def test_a_row_without_a_peer_and_the_written_results(tmp_path):
    alone = harness.row("pretrain", "small", "tokens/s", {"ours": Steps([1.0], [600], [6e10])}, _peak(), "fp32")
    assert alone.trl is None and alone.ratio is None
    md = harness.write("unit", [alone], _peak(), tmp_path)
    assert "| pretrain | small | fp32 | tokens/s | 600 | – | – | – |" in md.read_text()
    saved = json.loads((tmp_path / "unit.json").read_text())
    assert saved["rows"][0]["ours"] == 600 and saved["peak_flops"]["fp32"] == 100e9


def test_alternate_runs_each_contender_every_round_in_turn():
    order = []

    def contender(name):
        def one_round():
            order.append(name)
            return Steps([0.1], [1])
        return one_round

    measured = harness.alternate({"ours": contender("ours"), "trl": contender("trl")}, rounds=3)
    assert order == ["ours", "trl"] * 3
    assert len(measured["ours"].seconds) == len(measured["trl"].seconds) == 3


def test_peak_memory_counts_a_tensor_alive_inside_the_block():
    with harness.PeakMemory() as memory:
        x = torch.ones(10 * 2**20 // 4 * 4)  # 40 MiB
        x += 1
        time.sleep(0.05)  # alive for several of the sampler's 10 ms ticks (a fast machine frees it sooner)
        del x
    assert memory.peak_mb >= 35


def test_precision_auto_picks_bf16_only_where_bf16_matmuls_are_faster():
    from instructgpt.train import flops
    cpu = torch.device("cpu")
    assert flops.resolve_precision(cpu, "fp32") == "fp32" and flops.resolve_precision(cpu, "bf16") == "bf16"
    units = flops._cpu_has_bf16_units()
    expected = ("bf16" if flops._bf16_speedup("cpu") > 1.5 else "fp32") if units is None else ("bf16" if units else "fp32")
    assert flops.resolve_precision(cpu, "auto") == expected


@pytest.mark.parametrize("flags, expected", [("x86_64 avx512_bf16", "bf16"), ("x86_64 amx_bf16", "bf16"),
                                             ("x86_64", "fp32"), ("aarch64", "timed")])
def test_precision_auto_on_x86_follows_the_cpu_flags_not_a_timing(monkeypatch, flags, expected):
    from instructgpt.train import flops
    machine, *features = flags.split()
    monkeypatch.setattr(flops.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: "avx512_bf16" in features)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: "amx_bf16" in features)
    monkeypatch.setattr(flops, "_bf16_speedup", lambda device: 9.0)  # what a timing would say
    assert flops.resolve_precision(torch.device("cpu"), "auto") == ("bf16" if expected == "timed" else expected)


def test_the_trl_side_without_the_bench_extra_is_a_one_line_error(monkeypatch):
    from instructgpt.bench.trl_side import require_trl
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl -> ImportError
    with pytest.raises(UserError, match=r"pip install -e '\.\[bench\]'"):
        require_trl()


def test_ppo_without_trl_1_12_names_the_folder_and_the_command(monkeypatch, tmp_path):
    from instructgpt.bench import ppo
    monkeypatch.setattr(ppo, "TRL_PPO", tmp_path / "missing")
    with pytest.raises(UserError, match="trl==1.12"):
        ppo.TRLWorker("tiny", "fp32", steps=1)


def test_our_sft_side_times_steps_and_counts_real_tokens():
    from instructgpt.bench import sft
    one_round = sft.ours_side("tiny", packed=False, precision="fp32", steps=2, rounds=1, seq_len=128)
    got = one_round()
    assert len(got.seconds) == 2 and all(s > 0 for s in got.seconds)
    assert all(10 * 16 < u < 128 * 16 for u in got.units)  # 16 examples of 10 to 128 tokens, no padding
    assert all(f > 0 for f in got.flops)
