"""`train.compile`: torch.compile of the transformer bodies a stage's losses call."""
from __future__ import annotations

import torch


def compile_blocker(device: torch.device) -> str | None:
    """Why `torch.compile` cannot run here, or None. Inductor's CPU code needs a C++ compiler."""
    if device.type != "cpu":
        return None
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler
    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        return "no working C++ compiler (install g++ or clang++, or set CXX)"
    return None


def compile_decoders(model: torch.nn.Module) -> int:
    """`torch.compile` (dynamic shapes) every transformer body inside `model`, in place: the losses
    call the body directly (lm_parts), so compiling the top module would not reach it. Returns how
    many were compiled. What it gains and costs on the demo: the README's Speed section."""
    bodies = []
    for module in model.modules():
        base = module.get_base_model() if hasattr(module, "get_base_model") else module
        body = getattr(base, getattr(base, "base_model_prefix", ""), None)
        if isinstance(body, torch.nn.Module) and body is not base and body not in bodies:
            bodies.append(body)
    for body in bodies:
        body.compile(dynamic=True)
    return len(bodies)
