"""PPO rollouts: sample responses with the KV-cache decoder, then score them with the policy,
the frozen SFT reference, the value model and the reward model. Under torchrun every rank rolls
out its own prompts; advantage whitening and the statistics use the moments of all ranks."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch

from instructgpt.generation import generate
from instructgpt.generation.decode import left_pad
from instructgpt.models.parts import action_logprobs
from instructgpt.models.reward import sequence_rewards, token_scores
from instructgpt.objectives.ppo import gae, kl_penalized_rewards, whiten
from instructgpt.utils import dist


@dataclass
class Rollout:
    """B = prompts, P = longest prompt (left-padded), A = longest response; T = P + A."""

    sequences: torch.Tensor       # (B, T) long, prompt then response (pad after its stop token)
    attention_mask: torch.Tensor  # (B, T) long, 1 on prompt and response tokens
    action_mask: torch.Tensor     # (B, A) bool, True on generated tokens up to and incl. EOS
    logprobs: torch.Tensor        # (B, A) under the rollout policy
    ref_logprobs: torch.Tensor    # (B, A) under the frozen SFT model
    values: torch.Tensor          # (B, A) V(s_t) before each action
    scores: torch.Tensor          # (B,) RM score of the whole response (no-EOS penalty applied)
    advantages: torch.Tensor      # (B, A) GAE, whitened over the rollout
    returns: torch.Tensor         # (B, A) advantages + values (before whitening)
    stopped: torch.Tensor         # (B,) bool, the response ended with a stop token

    @property
    def prompt_len(self) -> int:
        return self.sequences.size(1) - self.action_mask.size(1)

    def rows(self, index: torch.Tensor) -> "Rollout":
        """The rollout restricted to rows `index` (a minibatch), columns trimmed to its longest response."""
        sub = replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})
        width = int(sub.action_mask.sum(1).max().clamp(min=1))
        cut = self.action_mask.size(1) - width
        if cut == 0:
            return sub
        return replace(sub, sequences=sub.sequences[:, :-cut], attention_mask=sub.attention_mask[:, :-cut],
                       **{name: getattr(sub, name)[:, :width] for name in
                          ("action_mask", "logprobs", "ref_logprobs", "values", "advantages", "returns")})

    def to(self, device: torch.device) -> "Rollout":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def action_values(value_model, sequences: torch.Tensor, attention_mask: torch.Tensor, num_actions: int
                  ) -> torch.Tensor:
    """(B, A) V(s_t): the value head at the token before each action."""
    values = token_scores(value_model, sequences, attention_mask)                      # (B, T)
    return values[:, -num_actions - 1:-1]


@torch.no_grad()
def make_rollout(policy, ref, value_model, reward_model, prompts: Sequence[Sequence[int]], *, pad_id: int,
                 stop_ids: Sequence[int], max_new_tokens: int, temperature: float, beta: float, gamma: float,
                 lam: float, no_eos_penalty: float, row_generators: Sequence[torch.Generator],
                 normalize=None) -> tuple[Rollout, dict[str, float]]:
    """Sample one response per prompt (row i drawn with `row_generators[i]`, so a response does not
    depend on which other prompts share its batch or process) and compute everything the PPO
    update needs. `normalize(scores)` whitens the RM scores (the stage's running moments)."""
    device = next(policy.parameters()).device
    models = (policy, ref, value_model, reward_model)
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    gen = generate(policy, prompts, pad_id=pad_id, stop_ids=stop_ids, max_new_tokens=max_new_tokens,
                   temperature=temperature, row_generators=row_generators)
    prompt_ids, prompt_mask = (t.to(device) for t in left_pad(prompts, pad_id))
    sequences = torch.cat([prompt_ids, gen.tokens], 1)                                 # (B, T)
    attention = torch.cat([prompt_mask, gen.mask.long()], 1)                            # (B, T)
    A = gen.tokens.size(1)
    logprobs, entropy = action_logprobs(policy, sequences, attention, A, with_entropy=True)
    ref_logprobs, _ = action_logprobs(ref, sequences, attention, A)
    values = action_values(value_model, sequences, attention, A)
    raw = sequence_rewards(reward_model, sequences, attention)                          # (B,)
    scores = raw - no_eos_penalty * (~gen.stopped).float()
    if normalize is not None:
        scores = normalize(scores)
    mask = gen.mask
    rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, beta)
    advantages, returns = gae(rewards, values * mask, mask, gamma, lam)
    for m, mode in zip(models, modes):
        m.train(mode)
    rows, raw_sum, score_sum, kl_sum, tokens, entropy_sum, stopped = dist.all_reduce_sum([
        mask.size(0), raw.sum(), scores.sum(), kl.sum(), mask.sum(), (entropy * mask).sum(), gen.stopped.sum()])
    stats = {"ppo/reward": raw_sum / rows, "ppo/score": score_sum / rows, "ppo/kl": kl_sum / rows,
             "ppo/kl_per_token": kl_sum / tokens, "ppo/entropy": entropy_sum / tokens,
             "ppo/response_length": tokens / rows, "ppo/eos_fraction": stopped / rows, "ppo/beta": beta}
    return Rollout(sequences, attention, mask, logprobs, ref_logprobs, values * mask, scores,
                   whiten(advantages, mask, reduce=dist.all_reduce_sum), returns, gen.stopped), stats
