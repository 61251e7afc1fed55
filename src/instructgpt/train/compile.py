"""`train.compile`: torch.compile of the transformer bodies a stage's losses call, block by block."""
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
    """`torch.compile` (dynamic shapes), in place, the transformer bodies inside `model` that the
    losses call directly (lm_parts; compiling the top module would not reach them). Regional
    compilation: a body's repeated blocks (its decoder layers) are compiled one by one, and since
    they share one forward, the graph is compiled once and reused by every layer; a body without
    repeated blocks is compiled whole. Returns how many bodies. What it gains and costs on the
    demo: the README's Speed section."""
    bodies = []
    for module in model.modules():
        base = module.get_base_model() if hasattr(module, "get_base_model") else module
        body = getattr(base, getattr(base, "base_model_prefix", ""), None)
        if isinstance(body, torch.nn.Module) and body is not base and body not in bodies:
            bodies.append(body)
    for body in bodies:
        for block in repeated_blocks(body) or [body]:
            block.compile(dynamic=True)
    return len(bodies)


def repeated_blocks(body: torch.nn.Module) -> list[torch.nn.Module]:
    """The list of same-class submodules in `body` that holds most of its weights (a decoder's layers,
    not the experts inside one), or [] if no such list has two."""
    lists = [m for m in body.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 1
             and len({type(block) for block in m}) == 1]
    return list(max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))) if lists else []
