"""Checkpoints: atomic, validated by manifest; a kill during a write leaves nothing that loads."""
import os
import signal
import subprocess
import sys

import torch

from conftest import ROOT
from instructgpt.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))


def test_save_load_and_prune(tmp_path):
    model = small_model()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, {"step": step}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2", "step-3"]
    other = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    state = load_checkpoint(latest_checkpoint(tmp_path), other)
    assert state["step"] == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_truncated_checkpoint_is_skipped(tmp_path):
    model = small_model()
    save_checkpoint(tmp_path, 1, model, {"step": 1})
    save_checkpoint(tmp_path, 2, model, {"step": 2})
    weights = tmp_path / "step-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    assert latest_checkpoint(tmp_path).name == "step-1"


KILL_DURING_WRITE = """
import os, signal, sys, torch
sys.path.insert(0, {src!r})
import instructgpt.checkpoint.store as store
model = torch.nn.Linear(256, 256)
store.save_checkpoint({root!r}, 1, model, {{"step": 1}})
real_save = torch.save
def dying_save(obj, f, *a, **k):
    with open(f, "wb") as fh:
        fh.write(b"half a file")
        fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
store.torch.save = dying_save
store.save_checkpoint({root!r}, 2, model, {{"step": 2}})
"""


def test_kill_during_checkpoint_write_leaves_no_valid_looking_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    code = KILL_DURING_WRITE.format(src=str(ROOT / "src"), root=str(root))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    names = sorted(os.listdir(root))
    assert "step-2" not in names                      # the half-written one never got its name
    assert any(n.startswith(".step-2.tmp-") for n in names)  # ... it died as a temp folder
    assert latest_checkpoint(root).name == "step-1"
    save_checkpoint(root, 3, torch.nn.Linear(256, 256), {"step": 3})
    assert not any(n.startswith(".step-2.tmp-") for n in os.listdir(root))  # cleaned on next save


def test_a_flipped_byte_fails_the_checksum_and_the_checkpoint_is_skipped_with_a_message(tmp_path, capsys):
    model = small_model()
    save_checkpoint(tmp_path, 1, model, {"step": 1})
    save_checkpoint(tmp_path, 2, model, {"step": 2})
    weights = tmp_path / "step-2" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size: only the checksum can tell
    weights.write_bytes(bytes(data))
    assert latest_checkpoint(tmp_path).name == "step-1"
    err = capsys.readouterr().err
    assert f"{tmp_path / 'step-2'}: incomplete or corrupt checkpoint: model.safetensors does not match its " \
           f"SHA-256 in the manifest; skipped" in err


def test_retention_never_removes_the_only_valid_checkpoint(tmp_path):
    """A leftover step-9 without a manifest (an older run's partial write) outranks the new step-6
    by number; keep=1 must still keep step-6, the only checkpoint that loads."""
    (tmp_path / "step-9").mkdir(parents=True)
    (tmp_path / "step-9" / "model.safetensors").write_bytes(b"partial")
    model = small_model()
    save_checkpoint(tmp_path, 5, model, {"step": 5}, keep=1)
    save_checkpoint(tmp_path, 6, model, {"step": 6}, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-6", "step-9"]
    assert latest_checkpoint(tmp_path).name == "step-6"
