"""RM, PPO and DPO losses on numbers worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from instructgpt.objectives.dpo import dpo_loss, ipo_loss
from instructgpt.objectives.ppo import (AdaptiveKLController, gae, kl_penalized_rewards, last_token_index,
                                        policy_loss, value_loss)
from instructgpt.objectives.reward import pairwise_loss, ranking_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # -log σ(-x)


def test_ranking_loss_k4_equals_the_pairwise_loss_of_its_six_pairs():
    rewards = torch.tensor([2.0, 1.0, 0.5, -1.0])
    loss, metrics = ranking_loss(rewards, torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3]))
    # margins of the 6 pairs: 1, 1.5, 3, 0.5, 2, 1.5 -> mean of log(1 + e^-margin)
    by_hand = (softplus(-1) + 2 * softplus(-1.5) + softplus(-3) + softplus(-0.5) + softplus(-2)) / 6
    assert loss.item() == pytest.approx(by_hand, abs=1e-6) and by_hand == pytest.approx(0.227613, abs=1e-6)
    w, l = zip(*[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])
    exploded, _ = pairwise_loss(rewards[list(w)], rewards[list(l)])
    assert loss.item() == pytest.approx(exploded.item(), abs=1e-6)
    assert metrics["accuracy"].item() == 1.0 and metrics["pairs"].item() == 6


def test_ranking_loss_averages_prompts_not_pairs_and_ignores_order_and_ties():
    # prompt 7: K=2 (margin -1, wrong order); prompt 3: K=3, completions listed out of order
    rewards = torch.tensor([0.0, 1.0, 0.5, 2.0, -1.0])
    groups = torch.tensor([7, 7, 3, 3, 3])
    ranks = torch.tensor([0, 1, 1, 0, 2])
    loss, metrics = ranking_loss(rewards, groups, ranks)
    k2 = softplus(1.0)
    k3 = (softplus(-1.5) + softplus(-3.0) + softplus(-1.5)) / 3
    assert loss.item() == pytest.approx((k2 + k3) / 2, abs=1e-6)
    assert metrics["accuracy"].item() == pytest.approx(3 / 4)
    tie, metrics = ranking_loss(torch.tensor([1.0, 0.0, 5.0]), torch.zeros(3, dtype=torch.long),
                                torch.tensor([0, 1, 1]))  # the two rank-1 completions form no pair
    assert metrics["pairs"].item() == 2
    assert tie.item() == pytest.approx((softplus(-1.0) + softplus(4.0)) / 2, abs=1e-6)


def test_gae_on_a_three_step_response():
    rewards = torch.tensor([[0.1, -0.2, 1.0]])
    values = torch.tensor([[0.5, 0.4, 0.3]])
    adv, ret = gae(rewards, values, torch.ones(1, 3, dtype=torch.bool), gamma=1.0, lam=0.9)
    # δ2 = 1.0 - 0.3 = 0.7; δ1 = -0.2 + 0.3 - 0.4 = -0.3; δ0 = 0.1 + 0.4 - 0.5 = 0
    # Â2 = 0.7; Â1 = -0.3 + 0.9 * 0.7 = 0.33; Â0 = 0 + 0.9 * 0.33 = 0.297
    assert adv.tolist()[0] == pytest.approx([0.297, 0.33, 0.7], abs=1e-6)
    assert ret.tolist()[0] == pytest.approx([0.797, 0.73, 1.0], abs=1e-6)


def test_gae_stops_at_the_end_of_a_right_padded_response():
    rewards = torch.tensor([[0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.25, 7.0]])  # position 2 is padding: neither its reward nor value counts
    adv, _ = gae(rewards, values, torch.tensor([[True, True, False]]), gamma=1.0, lam=1.0)
    assert adv.tolist()[0] == pytest.approx([0.5, 0.75, 0.0])


@pytest.mark.parametrize("mask", [[[True, True, False], [True, True, True]],     # right padding
                                  [[False, True, True], [True, True, True]]])   # left padding
def test_kl_penalized_rewards_put_the_score_on_the_last_real_token(mask):
    mask = torch.tensor(mask)
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -3.0], [-2.0, -1.0, -0.5]])
    rewards, kl = kl_penalized_rewards(torch.tensor([1.0, 2.0]), logprobs, ref, mask, beta=0.1)
    kl_by_hand = (logprobs - ref) * mask
    assert torch.allclose(kl, kl_by_hand)
    expected = -0.1 * kl_by_hand
    last = 1 if mask[0, 2] == 0 else 2
    expected[0, last] += 1.0
    expected[1, 2] += 2.0
    assert torch.allclose(rewards, expected)
    assert last_token_index(mask).tolist() == [last, 2]
    assert rewards[~mask].abs().sum() == 0


def test_clipped_policy_loss():
    mask = torch.ones(1, 3, dtype=torch.bool)
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 0.5]]))
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    loss, metrics = policy_loss(new, old, adv, mask, clip=0.2)
    # ρ=1.5, Â=+1: max(-1.5, -1.2) = -1.2 (clipped); ρ=0.5, Â=+1: max(-0.5, -0.8) = -0.5;
    # ρ=0.5, Â=-1: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx(-1.2 - 0.5 + 0.8, abs=1e-6)
    assert metrics["clipped"].item() == 2 and metrics["tokens"].item() == 3
    masked, _ = policy_loss(new, old, adv, torch.tensor([[True, True, False]]), clip=0.2)
    assert masked.item() == pytest.approx(-1.7, abs=1e-6)


def test_clipped_value_loss():
    values, old = torch.tensor([[0.5, -0.1]]), torch.zeros(1, 2)
    returns = torch.tensor([[1.0, -0.5]])
    loss, metrics = value_loss(values, old, returns, torch.ones(1, 2, dtype=torch.bool), clip=0.2)
    # V=0.5 clips to 0.2: ½ max(0.25, 0.64) = 0.32; V=-0.1 is inside the clip: ½ 0.16 = 0.08
    assert loss.item() == pytest.approx(0.40, abs=1e-6) and metrics["clipped"].item() == 1


def test_dpo_and_ipo_losses():
    args = (torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
    loss, metrics = dpo_loss(*args, beta=0.5)
    # h = (-1 + 2) - (-3 + 2) = 2; β h = 1; -log σ(1) = log(1 + e^-1)
    assert loss.item() == pytest.approx(0.3132617, abs=1e-6)
    assert metrics["margin"].item() == pytest.approx(1.0) and metrics["accuracy"].item() == 1.0
    loss, _ = ipo_loss(*args, beta=0.5)
    assert loss.item() == pytest.approx((2 - 1 / (2 * 0.5)) ** 2)  # = 1


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(kl=12.0, steps=100)  # error clipped to +0.2: β (1 + 0.2 * 100 / 10000)
    assert ctl.value == pytest.approx(0.1002)
    ctl.update(kl=5.4, steps=100)   # error -0.1
    assert ctl.value == pytest.approx(0.1002 * (1 - 0.1 * 0.01))
