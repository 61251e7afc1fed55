"""`train.compile`: torch.compile of the transformer bodies a stage's losses call."""
from __future__ import annotations

import torch


def compile_decoders(model: torch.nn.Module) -> int:
    """`torch.compile` (dynamic shapes) every transformer body inside `model`, in place: the losses
    call the body directly (lm_parts), so compiling the top module would not reach it. Returns how
    many were compiled. Measured on the tiny preset's SFT step on a 2-core CPU: 78 s to compile,
    then 515 instead of 634 ms a step (pays after ~650 steps)."""
    bodies = []
    for module in model.modules():
        base = module.get_base_model() if hasattr(module, "get_base_model") else module
        body = getattr(base, getattr(base, "base_model_prefix", ""), None)
        if isinstance(body, torch.nn.Module) and body is not base and body not in bodies:
            bodies.append(body)
    for body in bodies:
        body.compile(dynamic=True)
    return len(bodies)
