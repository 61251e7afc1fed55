"""Batches for the reward model, DPO and PPO: a chat prompt plus one completion per row,
encoded exactly as a rollout is (the generation prompt, the answer, `<|im_end|>`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

from instructgpt.data.comparisons import Comparison
from instructgpt.tokenizer.chat import SPECIAL_TOKENS, encode_chat
from instructgpt.utils import IGNORE_INDEX


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
class SequenceBatch:
    """N rows of prompt + completion, right-padded to T."""

    input_ids: torch.Tensor       # (N, T) long, pad_id after each row's end
    attention_mask: torch.Tensor  # (N, T) long, 1 on real tokens
    labels: torch.Tensor          # (N, T) long, the completion's tokens, else IGNORE_INDEX

    def to(self, device: torch.device) -> "SequenceBatch":
        return replace(self, **{k: v.to(device) for k, v in self.__dict__.items() if isinstance(v, torch.Tensor)})


def pad_sequences(encoded: Sequence[tuple[Sequence[int], Sequence[bool]]], pad_id: int) -> SequenceBatch:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, mask) in enumerate(encoded):
        n = len(ids)
        input_ids[row, :n] = torch.tensor(list(ids))
        attention[row, :n] = 1
        labels[row, :n] = torch.tensor([t if m else IGNORE_INDEX for t, m in zip(ids, mask)])
    return SequenceBatch(input_ids, attention, labels)


@dataclass
class RewardBatch:
    """All K completions of G prompts in one padded tensor: one forward per completion."""

    sequences: SequenceBatch
    group_ids: torch.Tensor  # (N,) long, the prompt each row answers
    ranks: torch.Tensor      # (N,) long, 0 = best within its prompt; equal = tie
    weights: None = None     # fit divides the summed loss by num_loss_tokens (here: prompts)

    @property
    def num_loss_tokens(self) -> int:
        """Prompts with at least one untied pair: the ranking loss is a mean over them."""
        return len({int(g) for g, r in zip(self.group_ids, self.ranks)
                    if bool(((self.group_ids == g) & (self.ranks != r)).any())})

    def to(self, device: torch.device) -> "RewardBatch":
        return RewardBatch(self.sequences.to(device), self.group_ids.to(device), self.ranks.to(device))


def reward_batch(comparisons: Sequence[Comparison], tokenizer, max_len: int, pad_id: int,
                 first_group: int = 0) -> RewardBatch:
    encoded, groups, ranks = [], [], []
    for g, c in enumerate(comparisons):
        prompt = encode_prompt(tokenizer, c.prompt)
        for completion, rank in zip(c.completions, c.ranks):
            encoded.append(encode_completion(tokenizer, prompt, completion, max_len))
            groups.append(first_group + g)
            ranks.append(rank)
    return RewardBatch(pad_sequences(encoded, pad_id), torch.tensor(groups), torch.tensor(ranks))
