"""Direct preference losses on sequence log-probabilities: DPO (Rafailov et al. 2023) and IPO
(Azar et al. 2023). Each is its own function; the config's enum picks one."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _log_ratio_margin(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                      ref_rejected: torch.Tensor) -> torch.Tensor:
    """h = (log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l)), (P,)."""
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)


def _metrics(h: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    return {"margin": (beta * h).detach().mean(), "accuracy": (h > 0).float().mean().detach()}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO: -log σ(β h) summed over pairs; inputs are (P,) summed completion log-probs.

    Returns (summed loss, metrics): `margin` = mean β h (the implicit reward margin), `accuracy`.
    """
    h = _log_ratio_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return -F.logsigmoid(beta * h).sum(), _metrics(h, beta)


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """IPO: (h - 1/(2β))² summed over pairs (τ = β); a squared loss that does not push h to infinity."""
    h = _log_ratio_margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return ((h - 1 / (2 * beta)) ** 2).sum(), _metrics(h, beta)


PREFERENCE_LOSSES = {"dpo": dpo_loss, "ipo": ipo_loss}
