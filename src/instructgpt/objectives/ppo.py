"""PPO losses (Schulman et al. 2017) as InstructGPT uses them: KL-penalised per-token rewards,
GAE, clipped policy and value losses, and the adaptive KL controller (Ziegler et al. 2019).

Shapes: B responses, A = the longest response; `mask` (B, A) is True on generated tokens up to
and including EOS. Losses are summed over masked tokens (divide by `mask.sum()` for the mean),
so a step split into micro-batches can normalise over all of its tokens.
"""
from __future__ import annotations

from typing import Callable

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last True of each row of a (B, A) mask, under left or right padding."""
    A = mask.size(1)
    return A - 1 - mask.long().flip(1).argmax(1)


def kl_penalized_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = -β (log π(a_t) - log π_ref(a_t)), plus the RM score at the last real token.

    scores: (B,); logprobs, ref_logprobs: (B, A); mask: (B, A) bool.
    Returns (rewards (B, A), kl (B, A)), both 0 where mask is False.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    rows = torch.arange(mask.size(0), device=mask.device)
    rewards[rows, last_token_index(mask)] += scores
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response.

    δ_t = r_t + γ V_{t+1} - V_t;  Â_t = δ_t + γ λ Â_{t+1}; returns R_t = Â_t + V_t.
    rewards, values: (B, A); mask: (B, A). V after the last token is 0. Returns (advantages,
    returns), (B, A), 0 where mask is False.
    """
    m = mask.to(values.dtype)
    rewards, values = rewards * m, values * m
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.size(1))):
        next_value = values[:, t + 1] if t + 1 < values.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * m


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
           reduce: Callable[[list[float]], list[float]] | None = None) -> torch.Tensor:
    """(x - mean) / std over the masked entries (the usual advantage normalisation).

    The moments come from the float64 sums [n, Σx, Σx²]; `reduce` (e.g. a sum over the processes
    of a torchrun job) turns this process's sums into the ones to use, so every rank whitens with
    the moments of the global batch.
    """
    m = mask.to(torch.float64)
    xd = x.detach().to(torch.float64)
    sums = [float(m.sum()), float((xd * m).sum()), float((xd * xd * m).sum())]
    n, s1, s2 = reduce(sums) if reduce is not None else sums
    mean = s1 / max(n, 1.0)
    var = max(s2 - n * mean * mean, 0.0) / max(n - 1, 1.0)
    out = (x - mean) / (var + 1e-8) ** 0.5
    return (out if shift_mean else out + mean) * mask.to(x.dtype)


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip: Σ_t max(-Â_t ρ_t, -Â_t clip(ρ_t, 1-ε, 1+ε)), ρ_t = π(a_t) / π_old(a_t).

    All (B, A). Returns (summed loss, metrics): `clipped` tokens where the clipped branch wins,
    `approx_kl` summed ½(log ρ)², `tokens`.
    """
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = (torch.maximum(unclipped, clipped) * mask).sum()
    metrics = {"clipped": ((clipped > unclipped) & mask).sum().detach().float(),
               "approx_kl": (0.5 * log_ratio.detach() ** 2 * mask).sum(), "tokens": mask.sum().float()}
    return loss, metrics


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss: Σ_t ½ max((V - R)², (V_old + clip(V - V_old, -ε, ε) - R)²). All (B, A).

    Returns (summed loss, metrics): `clipped` tokens where the clipped branch is larger.
    """
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    plain, clipped = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * (torch.maximum(plain, clipped) * mask).sum()
    return loss, {"clipped": ((clipped > plain) & mask).sum().detach().float()}


def variance_sums(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The sums over masked tokens that `explained_variance` needs (count, Σr, Σr², Σd, Σd² with
    d = r - v); add them up over micro-batches and processes for the whole step's value."""
    v, r = values.detach()[mask].double(), returns[mask].double()
    d = r - v
    return {"ev_n": float(r.numel()), "ev_r": float(r.sum()), "ev_r2": float((r * r).sum()),
            "ev_d": float(d.sum()), "ev_d2": float((d * d).sum())}


def explained_variance(sums: dict[str, float]) -> float:
    """1 - Var(R - V) / Var(R) over masked tokens, from `variance_sums`: 1 = perfect value function,
    0 = no better than a constant; nan when the returns do not vary."""
    n = sums["ev_n"]
    if n < 2:
        return float("nan")
    var_r = (sums["ev_r2"] - sums["ev_r"] ** 2 / n) / (n - 1)
    var_d = (sums["ev_d2"] - sums["ev_d"] ** 2 / n) / (n - 1)
    return float("nan") if var_r <= 1e-12 else 1 - var_d / var_r


class AdaptiveKLController:
    """β_{n+1} = β_n (1 + clip(KL / target - 1, -0.2, 0.2) · steps / horizon) (Ziegler et al. 2019)."""

    def __init__(self, beta: float, target: float, horizon: int):
        self.value, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, steps: int) -> None:
        error = min(max(kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * steps / self.horizon


class FixedKLController:
    """β stays as set."""

    def __init__(self, beta: float):
        self.value = beta

    def update(self, kl: float, steps: int) -> None:
        pass
