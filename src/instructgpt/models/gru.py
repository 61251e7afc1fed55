"""The seed's GRU encoder: token embedding -> (bi)GRU -> one vector per sequence."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

GRU_POOLING = ("mean", "last")


class GRUEncoder(nn.Module):
    """The seed document's model without its bugs (it pooled nothing and indexed logits by task).

    forward(input_ids (B, T) long, attention_mask (B, T) with 1 on real tokens, right padded)
    -> (B, D) float, D = `hidden` x (2 if `bidirectional` else 1) = `self.output_size`.

    Padding never enters the GRU (packed sequences), so a sequence's vector does not depend on
    the padding of its batch. `pooling`:
        mean  the top layer's outputs averaged over real tokens
        last  the top layer's final state of each direction (forward after the last token,
              backward after the first), concatenated
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 256, layers: int = 1,
                 bidirectional: bool = True, pooling: str = "mean", dropout: float = 0.1, pad_id: int = 0):
        super().__init__()
        if pooling not in GRU_POOLING:
            raise ValueError(f"GRU pooling must be one of {GRU_POOLING} (got '{pooling}')")
        self.config = dict(vocab_size=vocab_size, embed_dim=embed_dim, hidden=hidden, layers=layers,
                           bidirectional=bidirectional, pooling=pooling, dropout=dropout, pad_id=pad_id)
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden * self.directions
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if layers > 1 else 0.0)  # between stacked layers only

    def spec(self) -> dict[str, Any]:
        """What `heads.json` records to rebuild this encoder."""
        return {"kind": "gru", **self.config}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()                    # (B,)
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        outputs, h_n = self.gru(packed)          # h_n: (layers * directions, B, hidden)
        if self.pooling == "last":
            top = h_n[-self.directions:]                                          # (directions, B, hidden)
            return top.transpose(0, 1).reshape(input_ids.shape[0], self.output_size)
        padded, _ = pad_packed_sequence(outputs, batch_first=True)             # (B, T', D), zeros past each end
        return padded.sum(dim=1) / lengths.to(padded.device, padded.dtype).unsqueeze(1)
