"""Batches for the reward model, DPO and PPO: a chat prompt plus one completion per row,
encoded exactly as a rollout is (the generation prompt, the answer, `<|im_end|>`)."""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from instructgpt.data.comparisons import Comparison
from instructgpt.data.packing import SFTBatch, pad_batch
from instructgpt.data.prefix import TreeBatch, tree_batch
from instructgpt.tokenizer.chat import SPECIAL_TOKENS, encode_chat


def encode_prompt(tokenizer, prompt: Sequence[dict[str, str]]) -> list[int]:
    """The prompt's messages and the assistant header the answer follows."""
    return encode_chat(tokenizer, list(prompt), add_generation_prompt=True)[0]


def encode_completion(tokenizer, prompt_ids: Sequence[int], completion: str, max_len: int
                      ) -> tuple[list[int], list[bool]]:
    """(ids, loss mask) of prompt + completion + `<|im_end|>`, the mask on the completion and its
    end token; over `max_len`, the prompt loses its first tokens (the answer is kept whole when it fits)."""
    answer = tokenizer.encode(completion, add_special_tokens=False)
    answer.append(tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"]))
    ids = list(prompt_ids) + answer
    mask = [False] * len(prompt_ids) + [True] * len(answer)
    return ids[-max_len:], mask[-max_len:]


@dataclass
class RewardBatch:
    """All K completions of G prompts in one padded batch (one row each): one forward per completion."""

    sequences: SFTBatch | TreeBatch  # the N completions: padded rows, or trees sharing each prompt
    group_ids: torch.Tensor  # (N,) long, the prompt each row answers
    ranks: torch.Tensor      # (N,) long, 0 = best within its prompt; equal = tie
    num_loss_tokens: int     # prompts with an untied pair: fit divides the summed ranking loss by these
    weights: None = None

    def to(self, device: torch.device) -> "RewardBatch":
        return replace(self, sequences=self.sequences.to(device), group_ids=self.group_ids.to(device),
                       ranks=self.ranks.to(device))


def reward_batch(comparisons: Sequence[Comparison], tokenizer, max_len: int, pad_id: int,
                 first_group: int = 0, layout: str = "shared_prompt") -> RewardBatch:
    """shared_prompt: each prompt computed once, its K completions branching from it (data/prefix.py);
    padded: one completion a row."""
    encoded, groups, ranks = [], [], []
    for g, c in enumerate(comparisons):
        prompt = encode_prompt(tokenizer, c.prompt)
        for completion, rank in zip(c.completions, c.ranks):
            encoded.append(encode_completion(tokenizer, prompt, completion, max_len))
            groups.append(first_group + g)
            ranks.append(rank)
    ranked = sum(len(set(c.ranks)) > 1 for c in comparisons)
    if layout == "shared_prompt":
        ends = list(itertools.accumulate(len(c.completions) for c in comparisons))
        sequences = tree_batch([encoded[end - len(c.completions):end] for c, end in zip(comparisons, ends)], pad_id)
    else:
        sequences = pad_batch(encoded, pad_id)
    return RewardBatch(sequences, torch.tensor(groups), torch.tensor(ranks), ranked)


def step_keys(n: int, per_step: int, step: int, seed: int) -> list[int]:
    """The record indices of optimizer step `step`: epochs of a seeded shuffle of n records, cut into
    steps of `per_step` (a step that crosses an epoch's end continues in the next one's order)."""
    start = step * per_step
    keys: list[int] = []
    while len(keys) < per_step:
        epoch, offset = divmod(start + len(keys), n)
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        keys += order[offset:offset + per_step - len(keys)]
    return keys
