"""SFT batches: padded (one example a row) or packed (several a row, no attention across them)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Hashable, Iterator, Sequence

import torch

from instructgpt.utils import IGNORE_INDEX
from instructgpt.utils.masks import block_causal_mask, first_fit_rows

Encoded = tuple[Sequence[int], Sequence[bool]]  # token ids and loss mask of one example (see encode_chat)


@dataclass
class SFTBatch:
    """B rows of T tokens holding examples 0..E-1 of an optimizer step (E over all its micro-batches)."""

    input_ids: torch.Tensor       # (B, T) long, pad_id after the last example of a row
    labels: torch.Tensor          # (B, T) long, the token where the loss mask is on, else IGNORE_INDEX
    position_ids: torch.Tensor    # (B, T) long, restarting at 0 at each example
    attention_mask: torch.Tensor  # (B, T) long 1/0 when padded; (B, 1, T, T) additive float when packed
    example_index: torch.Tensor   # (B, T) long, the step-level index of the example at each position
    weights: torch.Tensor | None = None  # (E,) float, step-level loss weight of each example (objectives/sft.py)
    tasks: tuple[str, ...] = ()          # names of the tasks in this micro-batch (for messages)

    @property
    def num_loss_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def to(self, device: torch.device) -> "SFTBatch":
        return replace(self, **{k: v.to(device) for k in self.__dataclass_fields__
                                if isinstance(v := getattr(self, k), torch.Tensor)})


def _labels(ids: Sequence[int], mask: Sequence[bool]) -> list[int]:
    """Nothing predicts an example's first token (in a packed row its left neighbour would)."""
    return [t if m and i > 0 else IGNORE_INDEX for i, (t, m) in enumerate(zip(ids, mask))]


def _truncate(example: Encoded, max_len: int) -> Encoded:
    """Keep the last `max_len` tokens: the completion (at the end) survives."""
    ids, mask = example
    return (list(ids)[-max_len:], list(mask)[-max_len:]) if len(ids) > max_len else example


def pad_batch(examples: Sequence[Encoded], pad_id: int, first_index: int = 0, max_len: int | None = None) -> SFTBatch:
    """One example a row, right-padded to the longest; a 2D attention mask."""
    examples = [_truncate(e, max_len) for e in examples] if max_len else list(examples)
    width = max(len(ids) for ids, _ in examples)
    shape = (len(examples), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros(shape, dtype=torch.long)
    for row, (ids, mask) in enumerate(examples):
        n = len(ids)
        input_ids[row, :n] = torch.tensor(ids)
        labels[row, :n] = torch.tensor(_labels(ids, mask))
        attention[row, :n] = 1
    position_ids = torch.arange(width).expand(shape).clone()
    example_index = (first_index + torch.arange(len(examples))).unsqueeze(1).expand(shape).clone()
    return SFTBatch(input_ids, labels, position_ids, attention, example_index)


def pack_batch(examples: Sequence[Encoded], max_len: int, pad_id: int, first_index: int = 0) -> SFTBatch:
    """Examples in order, each into the current row while it fits (else a new row); a block-
    diagonal causal mask keeps every example from attending to its row neighbours."""
    rows: list[list[int]] = [[]]  # example numbers per row
    used = 0
    examples = [_truncate(e, max_len) for e in examples]
    for k, (ids, _) in enumerate(examples):
        if used + len(ids) > max_len and rows[-1]:
            rows.append([])
            used = 0
        rows[-1].append(k)
        used += len(ids)
    return _packed_rows(examples, rows, max_len, pad_id, first_index)


def unpad_batch(examples: Sequence[Encoded], pad_id: int, first_index: int = 0, max_len: int | None = None
                ) -> SFTBatch:
    """The examples of `pad_batch` without its padding: rows as long as the longest example, filled
    first-fit by decreasing length, with `pack_batch`'s per-example masks and positions. Same loss as
    `pad_batch` (example k keeps its index), over fewer positions: a padded SFT batch of short
    instructions is often half padding."""
    examples = [_truncate(e, max_len) for e in examples] if max_len else list(examples)
    width = max(len(ids) for ids, _ in examples)
    rows = first_fit_rows([len(ids) for ids, _ in examples], width)
    return _packed_rows(examples, rows, width, pad_id, first_index)


def _packed_rows(examples: Sequence[Encoded], rows: list[list[int]], width: int, pad_id: int,
                 first_index: int) -> SFTBatch:
    """Rows of `width` tokens holding the listed examples (by number) one after another."""
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    segment = torch.full(shape, -1, dtype=torch.long)       # slot within the row; -1 on padding
    example_index = torch.full(shape, first_index, dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for slot, k in enumerate(members):
            ids, mask = examples[k]
            span = slice(start, start + len(ids))
            input_ids[r, span] = torch.tensor(ids)
            labels[r, span] = torch.tensor(_labels(ids, mask))
            position_ids[r, span] = torch.arange(len(ids))
            segment[r, span] = slot
            example_index[r, span] = first_index + k
            start += len(ids)
    return SFTBatch(input_ids, labels, position_ids, block_causal_mask(segment), example_index)


def plan_micro_batches(stream: Iterator[tuple[Hashable, int]], rows: int, max_len: int,
                       packing: bool) -> Iterator[list[Hashable]]:
    """Group a stream of (example key, token length) into micro-batches of at most `rows` rows:
    filled in order under `pack_batch`'s rule when packing, else one example a row."""
    batch: list[Hashable] = []
    rows_used, used = 1, 0
    for key, length in stream:
        n = min(length, max_len)
        if not packing and len(batch) == rows:
            yield batch
            batch = []
        elif packing and batch and used + n > max_len:
            if rows_used == rows:
                yield batch
                batch, rows_used = [], 0
            rows_used, used = rows_used + 1, 0
        batch.append(key)
        used += n
