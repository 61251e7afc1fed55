"""The output head and a weighted cross-entropy in one pass over chunks of positions.

L = Σ_k w_k · (-log softmax(h_k Wᵀ + b)[y_k]) over K positions. Computed the straightforward
way, autograd keeps the (K, V) logits and their fp32 log-softmax for the backward pass: with a
49k vocabulary that is the largest tensor of an SFT step. Here each chunk of positions makes its
logits, its loss and, at once, its gradients (dL/dlogits = w · (softmax - onehot)), then drops
the logits; the backward pass only scales the stored gradients. The matmuls are the same three
as forward + backward of the head, so nothing is recomputed (the idea of Liger's fused linear
cross-entropy, here in plain PyTorch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 1024  # positions per chunk: a (CHUNK, V) fp32 tensor at a time


def _weighted_sum(nll: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Σ_k w_k nll_k; no weights: Σ_k nll_k (no ones tensor made)."""
    return nll.sum() if weights is None else (weights.float() * nll).sum()


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, token_weights, chunk):
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_bias = torch.zeros(weight.size(0), dtype=torch.float32, device=weight.device) if bias is not None else None
        nll = torch.empty(hidden.size(0), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), chunk):
            h, y = hidden[start:start + chunk], targets[start:start + chunk]
            logits = F.linear(h, weight, bias).float()                                  # (c, V)
            lse = torch.logsumexp(logits, -1)                                           # (c,)
            nll[start:start + chunk] = lse - logits.gather(1, y[:, None]).squeeze(1)
            grad = logits.sub_(lse[:, None]).exp_()                                     # softmax, in place
            grad[torch.arange(len(y), device=grad.device), y] -= 1
            if token_weights is not None:                                               # dL/dlogits
                grad.mul_(token_weights[start:start + chunk].float()[:, None])
            g = grad.to(h.dtype if torch.is_autocast_enabled(h.device.type) else weight.dtype)
            grad_hidden[start:start + chunk] = (g @ weight.to(g.dtype)).to(hidden.dtype)
            grad_weight += (g.t() @ h.to(g.dtype)).float()
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype),
                              grad_bias.to(bias.dtype) if grad_bias is not None else None)
        return _weighted_sum(nll, token_weights), nll

    @staticmethod
    def backward(ctx, grad_loss, grad_nll):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return (grad_hidden * grad_loss.to(grad_hidden.dtype), grad_weight * grad_loss.to(grad_weight.dtype),
                grad_bias * grad_loss.to(grad_bias.dtype) if grad_bias is not None else None, None, None, None)


def linear_cross_entropy(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor,
                         token_weights: torch.Tensor | None = None, chunk: int = CHUNK
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_k w_k NLL_k of the head's logits at `hidden`.

    hidden: (K, H) the positions that carry loss; head: an nn.Linear (V, H), run in chunks, or any
    other module mapping H to V logits (a LoRA-wrapped head), run by its own forward on the K
    positions at once; targets: (K,) long; token_weights: (K,) float, no gradient (None: 1 each).
    Returns (loss, nll (K,) detached). The gradient of a non-scalar use of `nll` is not supported:
    it is returned for statistics only.
    """
    weights = None if token_weights is None else token_weights.detach()
    if type(head) is not torch.nn.Linear:
        nll = F.cross_entropy(head(hidden).float(), targets, reduction="none")
        return _weighted_sum(nll, weights), nll.detach()
    loss, nll = _LinearCrossEntropy.apply(hidden, head.weight, head.bias, targets, weights, chunk)
    return loss, nll.detach()
