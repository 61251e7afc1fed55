"""Task heads (MT-DNN): a shared encoder, one linear classifier per task; build, save and load them.

A heads folder holds everything needed to use it:

    model.safetensors   the whole classifier (encoder + heads)
    heads.json          encoder kind and config, pooling, max_len, dropout, tasks and their labels
    tasks.json          per task: labels, instructions, kind, metric, cluster, held_out
    encoder/config.json the HF encoder's config (encoders bert, hf)
    tokenizer files, run.yaml
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from instructgpt.config.errors import UserError
from instructgpt.config.schema import HeadsConfig
from instructgpt.models.build import pad_id
from instructgpt.models.gru import GRU_POOLING, GRUEncoder
from instructgpt.utils.io import atomic_dir, atomic_write_json, atomic_write_text

HEADS_FILE, TASKS_FILE, ENCODER_DIR = "heads.json", "tasks.json", "encoder"
FORMAT = "instructgpt-heads/1"
NO_POOLER = ("bert", "roberta", "xlm-roberta", "camembert", "mpnet")  # built without their unused pooler


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden (B, T, D), attention_mask (B, T), right padded -> (B, D).

    mean: average over real tokens; cls: position 0 (BERT's [CLS]); last: the last real token.
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = attention_mask.sum(dim=1).clamp(min=1) - 1                         # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                          # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


class HFEncoder(nn.Module):
    """A Hugging Face encoder (e.g. `BertModel`) pooled to one vector: (B, T) ids -> (B, D)."""

    def __init__(self, model: nn.Module, pooling: str, kind: str):
        super().__init__()
        self.model, self.pooling, self.kind = model, pooling, kind
        self.output_size = model.config.hidden_size

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "pooling": self.pooling, "model_type": self.model.config.model_type}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        return pool(hidden, attention_mask, self.pooling)


class MultiTaskClassifier(nn.Module):
    """A shared encoder and one `nn.Linear(hidden_size, len(labels))` head per task.

    forward(input_ids (B, T), attention_mask (B, T), task_ids (B,) long index into `task_names`)
    -> logits (B, L) with L the most labels of any task; entries past a row's own task's labels
    are -inf, so softmax, argmax and cross-entropy over a row see only that task's labels.
    `encode` and `classify` are the two halves (a frozen encoder's outputs can be cached).
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, task_labels: dict[str, Sequence[str]],
                 dropout: float = 0.1, max_len: int = 128):
        super().__init__()
        if not task_labels:
            raise ValueError("MultiTaskClassifier needs at least one task")
        self.encoder = encoder
        self.hidden_size, self.max_len, self.dropout_p = hidden_size, max_len, dropout
        self.task_names = list(task_labels)
        self.task_labels = {name: list(labels) for name, labels in task_labels.items()}
        self.num_labels = max(len(v) for v in self.task_labels.values())
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, len(self.task_labels[n])) for n in self.task_names)

    def task_index(self, task: str) -> int:
        if task not in self.task_labels:
            raise UserError(f"unknown task '{task}' (this classifier has: {', '.join(self.task_names)})")
        return self.task_names.index(task)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask)                             # (B, H)

    def classify(self, pooled: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """pooled (B, H), task_ids (B,) -> logits (B, L), -inf past each task's labels."""
        pooled = self.dropout(pooled)
        logits = pooled.new_full((pooled.shape[0], self.num_labels), float("-inf"), dtype=torch.float32)
        for t in task_ids.unique().tolist():
            rows = (task_ids == t).nonzero(as_tuple=True)[0]
            head = self.heads[t]
            logits[rows, :head.out_features] = head(pooled[rows]).float()
        return logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(input_ids, attention_mask), task_ids)

    def spec(self) -> dict[str, Any]:
        """The contents of `heads.json` (with `load_classifier`, enough to rebuild this model)."""
        return {"format": FORMAT, "encoder": self.encoder.spec(), "hidden_size": self.hidden_size,
                "dropout": self.dropout_p, "max_len": self.max_len,
                "tasks": [{"name": n, "labels": self.task_labels[n]} for n in self.task_names]}


def encode_texts(tokenizer, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text with the tokenizer's special tokens ([CLS] ... [SEP] for BERT),
    cut in the middle to `max_len`: a prompt's instruction may sit at its start or its end."""
    ids = tokenizer(list(texts), add_special_tokens=True, verbose=False)["input_ids"]
    head = max_len // 2
    return [x if len(x) <= max_len else x[:head] + x[len(x) - (max_len - head):] for x in ids]


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: (input_ids (B, T) long, attention_mask (B, T) long)."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, :len(x)] = 1
    return input_ids, mask


def build_classifier(cfg: HeadsConfig, tokenizer, task_labels: dict[str, Sequence[str]]) -> MultiTaskClassifier:
    """A new classifier: a fresh GRU over `tokenizer`'s vocabulary, or the HF encoder at `cfg.path`
    (frozen when `cfg.freeze`), with new heads."""
    if cfg.encoder == "gru":
        if cfg.pooling not in GRU_POOLING:
            raise UserError(f"heads.pooling '{cfg.pooling}' needs a BERT-style encoder; for gru use "
                            f"{' or '.join(GRU_POOLING)}")
        encoder: nn.Module = GRUEncoder(len(tokenizer), cfg.embed_dim, cfg.hidden, cfg.layers, cfg.bidirectional,
                                        cfg.pooling, cfg.dropout, pad_id=pad_id(tokenizer))
    else:
        encoder = HFEncoder(_load_hf_encoder(cfg.path), cfg.pooling, cfg.encoder)
    if cfg.freeze:
        encoder.requires_grad_(False)
    return MultiTaskClassifier(encoder, encoder.output_size, task_labels, cfg.dropout, cfg.max_len)


def _load_hf_encoder(path: str | None) -> nn.Module:
    from transformers import AutoConfig, AutoModel
    if not path or not (Path(path) / "config.json").is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); key heads.path "
                        f"(an `instructgpt pretrain` MLM output or an `instructgpt import`ed encoder)")
    config = AutoConfig.from_pretrained(path)
    extra = {"add_pooling_layer": False} if config.model_type in NO_POOLER else {}
    return AutoModel.from_pretrained(path, dtype=torch.float32, **extra)


def save_classifier(folder: str | Path, model: MultiTaskClassifier, tokenizer, tasks: dict[str, dict[str, Any]],
                    run_yaml: str | None = None, keep: Sequence[str] = ()) -> Path:
    """Write the heads folder in one rename; the entries named in `keep` (e.g. `checkpoints`)
    move from the old folder into the new one."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        if isinstance(model.encoder, HFEncoder):
            model.encoder.model.config.save_pretrained(tmp / ENCODER_DIR)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / HEADS_FILE, model.spec())
        atomic_write_json(tmp / TASKS_FILE, tasks)
        if run_yaml is not None:
            atomic_write_text(tmp / "run.yaml", run_yaml)
        for name in keep:
            if (folder / name).exists():
                os.replace(folder / name, tmp / name)
    return folder


def is_heads_folder(folder: str | Path) -> bool:
    return (Path(folder) / HEADS_FILE).is_file()


def load_classifier(folder: str | Path) -> tuple[MultiTaskClassifier, Any]:
    """(classifier in eval mode, tokenizer) from a folder written by `save_classifier`."""
    folder = Path(folder)
    if not is_heads_folder(folder):
        raise UserError(f"{folder}: not a task-heads folder (no {HEADS_FILE}); train one with "
                        f"`instructgpt sft CONFIG mode=heads`")
    spec = json.loads((folder / HEADS_FILE).read_text())
    enc = dict(spec["encoder"])
    kind = enc.pop("kind")
    if kind == "gru":
        encoder: nn.Module = GRUEncoder(**enc)
    else:
        from transformers import AutoConfig, AutoModel
        config = AutoConfig.from_pretrained(folder / ENCODER_DIR)
        extra = {"add_pooling_layer": False} if config.model_type in NO_POOLER else {}
        encoder = HFEncoder(AutoModel.from_config(config, **extra), enc["pooling"], kind)
    labels = {t["name"]: t["labels"] for t in spec["tasks"]}
    model = MultiTaskClassifier(encoder, spec["hidden_size"], labels, spec["dropout"], spec["max_len"])
    load_model(model, str(folder / "model.safetensors"))
    from transformers import AutoTokenizer
    return model.eval(), AutoTokenizer.from_pretrained(str(folder))


def load_tasks_json(folder: str | Path) -> dict[str, dict[str, Any]]:
    """`tasks.json` of a heads folder or an SFT model folder: task -> labels, instructions, ..."""
    path = Path(folder) / TASKS_FILE
    if not path.is_file():
        raise UserError(f"{folder}: no {TASKS_FILE} (task names, instructions and labels); "
                        f"the folder must come from `instructgpt sft`")
    return json.loads(path.read_text())
