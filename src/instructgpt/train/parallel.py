"""Data parallelism for `fit`. Under torchrun the whole step function runs as the forward of one
module wrapped in DDP or FSDP2 (`fully_shard` on each transformer layer, then on the wrapper), so
a stage's step may call any part of its model (decoder, head, value model) and every stage scales
out with no distributed code of its own. In one process the step runs on the model as is.

Both DDP and FSDP2 average gradients over the ranks; `fit` multiplies each rank's loss by
`loss_scale` (the world size) so the update is the sum of every rank's share of a loss that is
normalised over the whole global step, which equals the 1-process gradient of the same batch.
"""
from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from typing import Any, Callable, Iterator

import torch

from instructgpt.config.schema import DistributedConfig
from instructgpt.utils import dist


class StepModule(torch.nn.Module):
    """The step as one forward: DDP's and FSDP2's hooks run even though `step_fn` calls submodules."""

    def __init__(self, model: torch.nn.Module, step_fn: Callable):
        super().__init__()
        self.model, self.step_fn = model, step_fn

    def forward(self, batch: Any):
        return self.step_fn(self.model, batch)


class Parallel:
    """How `fit` runs micro-batches, clips, checkpoints and evaluates under one strategy
    (`none` in one process, else `ddp` or `fsdp`)."""

    def __init__(self, model: torch.nn.Module, step_fn: Callable, cfg: DistributedConfig | None,
                 device: torch.device):
        self.model, self.device = model, device
        self.world = dist.world_size()
        self.strategy = cfg.strategy if cfg is not None and self.world > 1 else "none"
        self.module = StepModule(model, step_fn)
        self.runner: torch.nn.Module = self.module
        if self.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel
            # buffers (rotary tables, PPO's β and reward moments) are equal on every rank: no syncing
            self.runner = DistributedDataParallel(self.module, find_unused_parameters=cfg.find_unused_parameters,
                                                  forward_sync_buffers=False)
        elif self.strategy == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard
            self._ties = tied_names(model)
            self._skeleton = skeleton(model) if dist.is_main() else None
            mesh = init_device_mesh(device.type, (self.world,))
            for layer in transformer_layers(model):
                fully_shard(layer, mesh=mesh)
            fully_shard(self.module, mesh=mesh)

    @property
    def loss_scale(self) -> float:
        return float(self.world)

    @contextlib.contextmanager
    def micro_batch(self, sync: bool) -> Iterator[None]:
        """Forward + backward of one micro-batch; gradients are communicated only when `sync`
        (the step's last micro-batch)."""
        if self.strategy == "ddp" and not sync:
            with self.runner.no_sync():
                yield
            return
        if self.strategy == "fsdp":
            self.module.set_requires_gradient_sync(sync)
        yield

    def clip(self, params: list[torch.Tensor], max_norm: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm)
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
            norm = norm.full_tensor()
        return float(norm)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Every rank evaluates the same data (identical results). FSDP2: every unit's parameters
        are gathered for the duration, so code that reads weights without calling the layer's
        forward (the lean decoder) sees whole tensors."""
        if self.strategy != "fsdp":
            yield
            return
        from torch.distributed.fsdp import FSDPModule
        units = [m for m in self.module.modules() if isinstance(m, FSDPModule)]
        for unit in units:
            unit.unshard()
        try:
            yield
        finally:
            for unit in units:
                unit.reshard()

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer state to checkpoint (FSDP2: gathered in full, keyed by parameter name)."""
        if self.strategy != "fsdp":
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
        return get_optimizer_state_dict(self.model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict) -> None:
        if self.strategy != "fsdp":
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
        set_optimizer_state_dict(self.model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def plain_model(self) -> torch.nn.Module | None:
        """The trained model as an ordinary module on rank 0 (None on the others). FSDP2: every
        rank joins the all-gathers; rank 0 fills a fresh copy of the model's structure."""
        if self.strategy != "fsdp":
            return self.model if dist.is_main() else None
        full = {}
        for name, value in self.model.state_dict().items():
            value = value.full_tensor() if hasattr(value, "full_tensor") else value
            if dist.is_main():
                full[name] = value.detach().cpu()
        if not dist.is_main():
            return None
        plain = copy.deepcopy(self._skeleton)
        plain.load_state_dict(full, strict=False, assign=True)
        retie(plain, self._ties)
        left = [n for n, p in plain.named_parameters() if p.is_meta]
        if left:
            raise RuntimeError(f"FSDP gather left parameters unfilled: {left[:5]}")
        return plain


def transformer_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks FSDP2 shards one by one: modules of a class the HF model names in
    `_no_split_modules` whose name ends in "Layer" (LlamaDecoderLayer, BertLayer, ...)."""
    names: set[str] = set()
    for m in model.modules():
        names |= {n for n in (getattr(m, "_no_split_modules", None) or []) if n.endswith("Layer")}
    return [m for m in model.modules() if type(m).__name__ in names]


def skeleton(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with parameters on the meta device (no memory); buffers are real copies."""
    memo = {id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


def tied_names(model: torch.nn.Module) -> list[list[str]]:
    """Groups of parameter names that share one tensor (tied embeddings)."""
    groups: dict[int, list[str]] = defaultdict(list)
    for name, p in model.named_parameters(remove_duplicate=False):
        groups[id(p)].append(name)
    return [names for names in groups.values() if len(names) > 1]


def retie(model: torch.nn.Module, groups: list[list[str]]) -> None:
    for first, *others in groups:
        shared = model.get_parameter(first)
        for name in others:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, shared)
