"""Preference pairs with their prompt computed once: [prompt, chosen, rejected] in one sequence.

Chosen and rejected continue the same prompt, so the straightforward batch runs the prompt
twice. Here each pair is a small tree: the shared prefix (positions 0..L-1), then the chosen
branch and the rejected branch, both at positions L, L+1, ...; a branch token attends to the
prefix and to its own branch, never to the other one (a 4D mask), so every hidden state equals
the one the sequence would get alone. A completion token is scored from the hidden state of the
token before it in *its own* sequence: for a branch's first token that is the prefix's last
token, shared by both. Trees are packed first-fit by decreasing length into rows as long as the
longest tree. With short answers after long prompts (the task suite's shape), this nearly halves
the positions of a DPO step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

Encoded = tuple[Sequence[int], Sequence[bool]]  # ids and completion mask (data.preference.encode_completion)


@dataclass
class TreeBatch:
    """Rows of packed pair trees and, for every completion token, where it is scored from."""

    input_ids: torch.Tensor       # (B, T) long
    position_ids: torch.Tensor    # (B, T) long
    attention_mask: torch.Tensor  # (B, 1, T, T) additive float
    predictor: torch.Tensor       # (K,) long, flat index (row * T + col) of the position scoring target k
    targets: torch.Tensor         # (K,) long
    owners: torch.Tensor          # (K,) long, the example: pair i's chosen = i, its rejected = P + i
    num_examples: int

    @property
    def num_loss_tokens(self) -> int:
        return self.targets.numel()

    def to(self, device: torch.device) -> "TreeBatch":
        return replace(self, **{k: getattr(self, k).to(device) for k in
                                ("input_ids", "position_ids", "attention_mask", "predictor", "targets", "owners")})


def _shared(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """Length of the common prefix of a and b, at most `limit`."""
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def tree_batch(pairs: Sequence[tuple[Encoded, Encoded]], pad_id: int) -> TreeBatch:
    """P pairs (chosen, rejected), each (ids, completion mask) of prompt + completion, as packed trees."""
    P = len(pairs)
    trees = []  # (ids, positions, branch, scored: [(offset of predictor, target, owner)])
    for i, ((c_ids, c_mask), (r_ids, r_mask)) in enumerate(pairs):
        first = min(list(c_mask).index(True) if True in c_mask else len(c_ids),
                    list(r_mask).index(True) if True in r_mask else len(r_ids))
        L = _shared(c_ids, r_ids, first)
        ids, positions, branch, scored = list(c_ids[:L]), list(range(L)), [0] * L, []
        for b, (seq, mask, owner) in enumerate(((c_ids, c_mask, i), (r_ids, r_mask, P + i)), start=1):
            start = len(ids)
            ids += seq[L:]
            positions += range(L, len(seq))
            branch += [b] * (len(seq) - L)
            for j in range(max(L, 1), len(seq)):
                if mask[j]:
                    before = j - 1
                    scored.append((before if before < L else start + before - L, seq[j], owner))
        trees.append((ids, positions, branch, scored))
    width = max(len(t[0]) for t in trees)
    rows: list[list[int]] = []
    free: list[int] = []
    for k in sorted(range(len(trees)), key=lambda k: -len(trees[k][0])):
        n = len(trees[k][0])
        row = next((r for r, room in enumerate(free) if room >= n), None)
        if row is None:
            rows.append([])
            free.append(width)
            row = len(rows) - 1
        rows[row].append(k)
        free[row] -= n
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    tree_of = torch.full(shape, -1, dtype=torch.long)   # -1 on padding
    branch_of = torch.zeros(shape, dtype=torch.long)
    predictor, targets, owners = [], [], []
    for r, members in enumerate(rows):
        start = 0
        for k in members:
            ids, positions, branch, scored = trees[k]
            span = slice(start, start + len(ids))
            input_ids[r, span] = torch.tensor(ids)
            position_ids[r, span] = torch.tensor(positions)
            tree_of[r, span] = k
            branch_of[r, span] = torch.tensor(branch)
            for offset, target, owner in scored:
                predictor.append(r * width + start + offset)
                targets.append(target)
                owners.append(owner)
            start += len(ids)
    return TreeBatch(input_ids, position_ids, _tree_mask(tree_of, branch_of), torch.tensor(predictor),
                     torch.tensor(targets), torch.tensor(owners), 2 * P)


def _tree_mask(tree: torch.Tensor, branch: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) tree and branch ids -> (B, 1, T, T) additive mask: a query sees earlier keys of its tree
    that are in the shared prefix (branch 0) or in its own branch. Padding is its own tree."""
    T = tree.size(1)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=tree.device))
    same_tree = tree[:, :, None] == tree[:, None, :]
    visible = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    allowed = same_tree & visible & causal
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
