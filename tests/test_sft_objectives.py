"""SFT reductions on numbers worked out by hand; task_balanced is independent of the micro-batch split."""
import math

import pytest
import torch

from instructgpt.objectives.sft import STEP_WEIGHTS, Reduction, example_losses, weighted_loss
from instructgpt.utils import IGNORE_INDEX

# three examples: tasks (0, 0, 1), loss tokens (1, 3, 2), summed NLL (2, 3, 4) -> mean losses (2, 1, 2)
TASKS = torch.tensor([0, 0, 1])
TOKENS = torch.tensor([1, 3, 2])
SUMS = torch.tensor([2.0, 3.0, 4.0])


@pytest.mark.parametrize("reduction, expected", [
    (Reduction.token_mean, 9 / 6),                           # (2 + 3 + 4) / (1 + 3 + 2)
    (Reduction.example_mean, (2 + 1 + 2) / 3),               # mean of the per-example means
    # (1/N) Σ_i (1/M_i) Σ_j L_ij with L_ij = S_ij / T̄, N = 2, T̄ = 6 / 3 = 2
    (Reduction.task_balanced, 0.5 * ((2 + 3) / 2 / 2 + 4 / 1 / 2)),
])
def test_reductions_by_hand(reduction, expected):
    weights = STEP_WEIGHTS[reduction](TASKS, TOKENS)
    assert weighted_loss(SUMS, weights).item() == pytest.approx(expected)


def test_examples_without_loss_tokens_do_not_count_as_tasks():
    tasks, tokens, sums = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 1]), torch.tensor([4.0, 0.0, 3.0])
    weights = STEP_WEIGHTS[Reduction.task_balanced](tasks, tokens)
    assert weights[1] == 0
    assert weighted_loss(sums, weights).item() == pytest.approx(0.5 * (4 + 3) / 1.5)  # T̄ = 1.5


def test_example_losses_on_a_packed_row():
    # one row holding example 0 (positions 0-1) and example 1 (positions 2-4); vocab of 2
    logits = torch.zeros(1, 5, 2)
    logits[0, 0, 1] = math.log(3)                   # position 0 predicts token 1 with p = 3/4
    labels = torch.tensor([[IGNORE_INDEX, 1, IGNORE_INDEX, 0, 1]])
    owner = torch.tensor([[0, 0, 1, 1, 1]])
    sums, tokens = example_losses(logits, labels, owner, num_examples=2)
    assert tokens.tolist() == [1, 2]
    assert torch.allclose(sums, torch.tensor([-math.log(0.75), 2 * math.log(2)]))


@pytest.mark.parametrize("reduction", list(Reduction))
def test_split_of_the_step_gives_the_same_gradient(reduction):
    torch.manual_seed(0)
    emb, head = torch.nn.Embedding(16, 8), torch.nn.Linear(8, 16)
    ids = torch.randint(0, 16, (8, 10))
    labels = ids.clone()
    for row, prompt_len in enumerate([2, 7, 3, 8, 1, 5, 6, 4]):  # unequal completion lengths
        labels[row, :prompt_len] = IGNORE_INDEX
    owner = torch.arange(8).unsqueeze(1).expand(8, 10)            # one example per row, global ids
    tasks = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    _, tokens = example_losses(torch.zeros(8, 10, 16), labels, owner, 8)
    weights = STEP_WEIGHTS[reduction](tasks, tokens)                # from the whole step

    def grads(split: int) -> list[torch.Tensor]:
        emb.zero_grad()
        head.zero_grad()
        per = 8 // split
        for k in range(split):
            rows = slice(k * per, (k + 1) * per)
            sums, _ = example_losses(head(emb(ids[rows])), labels[rows], owner[rows], 8)
            weighted_loss(sums, weights).backward()
        return [p.grad.clone() for p in (*emb.parameters(), *head.parameters())]

    one, two, eight = grads(1), grads(2), grads(8)
    for a, b, c in zip(one, two, eight):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
