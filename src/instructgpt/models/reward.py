"""Reward and value models: `AutoModelForSequenceClassification(num_labels=1)` on a causal LM
folder (the HF and TRL convention). The reward is the score head at the last real token; the
value model applies the same head at every token. `config.reward_bias` is added to every
reward (the RM stage sets it so the demonstrations score 0 on average)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from instructgpt.config.errors import UserError
from instructgpt.models.parts import decoder_hidden


def load_score_model(path: str | Path, new_head: bool = False) -> torch.nn.Module:
    """A sequence-classification model with one output from an HF folder: a trained RM, or (with
    `new_head`) a causal LM such as the SFT model, whose fresh score head starts at zero."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); key reward_model / model.path")
    from transformers import AutoConfig, AutoModelForSequenceClassification
    config = AutoConfig.from_pretrained(str(path))
    if not new_head and not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise UserError(f"{path}: not a reward model (architectures: {config.architectures}); "
                        f"train one with `instructgpt reward`")
    config.num_labels = 1
    if config.pad_token_id is None:
        config.pad_token_id = config.eos_token_id
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new head is expected: no "MISSING score.weight" report
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), config=config, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(level)
    if new_head:
        torch.nn.init.zeros_(score_head(model).weight)  # every completion starts at reward 0
        model.config.reward_bias = 0.0
    return model


def score_head(model: torch.nn.Module) -> torch.nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.score


def token_scores(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(N, T) the score head at every position (the value model's V(s_t)). A 2D mask without
    `position_ids` runs without the batch's padding (models.parts.decoder_hidden)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(base, base.base_model_prefix)
    if position_ids is None and attention_mask.dim() == 2:
        hidden = decoder_hidden(decoder, input_ids, attention_mask)                  # (N, T, H)
    else:
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids).last_hidden_state               # (N, T, H)
    return base.score(hidden).squeeze(-1).float() + float(getattr(base.config, "reward_bias", 0.0))


def sequence_rewards(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
                     ) -> torch.Tensor:
    """(N,) the score at each row's last real token, under left or right padding."""
    scores = token_scores(model, input_ids, attention_mask)                          # (N, T)
    last = attention_mask.size(1) - 1 - attention_mask.flip(1).argmax(1)             # (N,)
    return scores[torch.arange(scores.size(0), device=scores.device), last]


def batch_rewards(model: torch.nn.Module, sequences) -> torch.Tensor:
    """(N,) the reward of each sequence of a padded batch (SFTBatch) or of prompt-sharing trees (TreeBatch)."""
    if hasattr(sequences, "last"):  # data.prefix.TreeBatch: the score at each sequence's last token
        scores = token_scores(model, sequences.input_ids, sequences.attention_mask, sequences.position_ids)
        return scores.reshape(-1)[sequences.last]
    return sequence_rewards(model, sequences.input_ids, sequences.attention_mask)


@torch.no_grad()
def score_sequences(model: torch.nn.Module, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
                    ) -> list[float]:
    """The score of each whole token sequence (prompt + response), in batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(sequences), batch_size):
        chunk = [torch.tensor(list(s), dtype=torch.long) for s in sequences[start:start + batch_size]]
        ids = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True, padding_value=pad_id).to(device)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(c) for c in chunk], batch_first=True).to(device)
        out += sequence_rewards(model, ids, mask).tolist()
    model.train(was_training)
    return out
