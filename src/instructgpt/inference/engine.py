"""`Engine`: a trained folder ready to answer — generate, chat, classify, answer.

    engine = instructgpt.load("runs/demo/ppo")
    engine.generate("Once upon a time", max_new_tokens=20)          -> Completion
    engine.chat([{"role": "user", "content": "Write 'house' backwards."}]).text
    engine.classify(["I loved it"], task="review_sentiment")        -> [{"label", "probs"}]
    engine.classify(["I loved it"], labels=["positive", "negative"])
    engine.answer("What time does the store open?", context="The store opens at 7 am.")

Every path decodes through `generation.generate` (the same decoder PPO rollouts and eval use).
A task-heads folder answers `classify` only; a reward model is refused with a one-line error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from instructgpt.config.errors import UserError
from instructgpt.generation import generate
from instructgpt.generation.llama import LeanLlama, prepare
from instructgpt.models.build import load_model, pad_id
from instructgpt.models.heads import TASKS_FILE, is_heads_folder, load_tasks_json
from instructgpt.tokenizer.chat import encode_chat, stop_ids
from instructgpt.utils.device import resolve_device


@dataclass(frozen=True)
class SamplingParams:
    """How to decode one prompt. temperature 0 = greedy; seed makes a sampled reply reproducible
    whatever else is in its batch."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        checks = [(self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
                  (self.temperature >= 0, "temperature must be >= 0"),
                  (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
                  (0 <= self.top_k < 2**31, "top_k must be in [0, 2**31)")]
        for ok, message in checks:
            if not ok:
                raise UserError(f"{message} (got {self})")
        object.__setattr__(self, "stop", tuple([self.stop] if isinstance(self.stop, str) else self.stop))


@dataclass
class Completion:
    """One reply: text without stop token or stop string, its ids and their log-probabilities."""

    text: str
    tokens: list[int]
    logprobs: list[float]
    finish_reason: str          # "stop" (stop token or string), "length" (max_new_tokens) or "cancelled"
    prompt_tokens: int


# Called with (row, token id) for each token a row generates; returns True to stop that row.
TokenSink = Callable[[int, int], bool]


def heads_cannot_generate(path: Path) -> UserError:
    return UserError(f"{path}: a task-heads classifier (heads.json) cannot generate text; use classify(), "
                     f"or load a causal LM folder such as runs/NAME/sft")


class Engine:
    """One model and its tokenizer, loaded once; thread-compatible (callers serialise decoding).
    The decoder's fast path reads the weights at the first decode and keeps them: build a new
    Engine for a model whose weights changed since."""

    def __init__(self, path: Path, model, tokenizer, tasks: dict[str, dict[str, Any]] | None = None):
        self.path, self.model, self.tokenizer = path, model, tokenizer
        self.tasks = tasks or {}
        self.name = path.name
        self.device = next(model.parameters()).device
        self.pad_id, self.stop_ids = pad_id(tokenizer), stop_ids(tokenizer)
        self.max_length = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
        self._classifier = None
        self._lean: LeanLlama | None = None

    @staticmethod
    def from_checkpoint(path: str | Path, device: str = "auto", dtype: str = "auto",
                        generates: bool = False) -> "Engine | HeadsEngine":
        """An HF causal LM folder (a stage's output or an imported model), or a task-heads folder
        (refused with `generates`, for callers that need text).

        dtype "auto" keeps the saved weights' precision; "bfloat16" halves memory (fast on GPUs and
        on CPUs with bf16 matrix units, slow on others).
        """
        from instructgpt.tokenizer.train import load_tokenizer
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such model folder")
        if is_heads_folder(path):
            if generates:
                raise heads_cannot_generate(path)
            return HeadsEngine(path, device)
        if path.is_dir() and not (path / "config.json").is_file():
            raise UserError(f"{path}: neither a task-heads folder (heads.json) nor a model folder (config.json); "
                            f"give a folder written by a stage (runs/NAME/sft, ppo ...) or by `instructgpt import`")
        model = load_model(path, "llama", dtype).to(resolve_device(device)).eval()
        tasks = load_tasks_json(path) if (path / TASKS_FILE).is_file() else {}
        return Engine(path, model, load_tokenizer(path), tasks)

    # ---- prompts -------------------------------------------------------------------------------
    def encode_text(self, prompt: str) -> list[int]:
        """A raw prompt as ids (no chat template), as `/v1/completions` takes it."""
        return self.tokenizer.encode(prompt, add_special_tokens=False)

    def encode_messages(self, messages: Sequence[dict]) -> list[int]:
        """Chat messages as ChatML ids ending in the assistant's turn opener."""
        try:
            ids, _ = encode_chat(self.tokenizer, messages, add_generation_prompt=True)
        except ValueError as e:
            raise UserError(f"messages: {e}") from None
        return ids

    # ---- decoding ------------------------------------------------------------------------------
    def complete_ids(self, prompts: Sequence[Sequence[int]], params: Sequence[SamplingParams],
                     sink: TokenSink | None = None) -> list[Completion]:
        """Decode a batch of prompts, each with its own params; `sink` sees every token as it comes."""
        if len(prompts) != len(params):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} params")
        for ids, p in zip(prompts, params):
            if not ids:
                raise UserError("empty prompt: give at least one token of text")
            if len(ids) + p.max_new_tokens > self.max_length:
                raise UserError(f"prompt of {len(ids)} tokens + max_new_tokens {p.max_new_tokens} exceeds the "
                                f"model's context of {self.max_length} tokens")
        cancelled = torch.zeros(len(prompts), dtype=torch.bool)

        def on_step(tokens: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
            """Passes each live row's token to the sink; stops the rows whose sink asks to."""
            for row, (token, alive) in enumerate(zip(tokens.tolist(), live.tolist())):
                if alive and sink(row, token):
                    cancelled[row] = True
            return cancelled.to(tokens.device)

        if self._lean is None:
            self._lean = prepare(self.model)
        gen = generate(
            self.model, prompts, pad_id=self.pad_id, stop_ids=self.stop_ids,
            max_new_tokens=[p.max_new_tokens for p in params], temperature=[p.temperature for p in params],
            top_k=[p.top_k for p in params], top_p=[p.top_p for p in params],
            row_generators=[self._generator(p.seed) for p in params], stop_strings=[p.stop for p in params],
            tokenizer=self.tokenizer, on_step=on_step if sink is not None else None, lean=self._lean)
        texts = gen.texts(self.tokenizer)
        out = []
        for row, prompt in enumerate(prompts):
            keep = gen.mask[row]
            reason = "stop" if bool(gen.stopped[row]) else "cancelled" if bool(cancelled[row]) else "length"
            out.append(Completion(texts[row], gen.tokens[row][keep].tolist(), gen.logprobs[row][keep].tolist(),
                                  reason, len(prompt)))
        return out

    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator(device=self.device)
        return g.manual_seed(seed % 2**63) if seed is not None else g.manual_seed(int(torch.randint(0, 2**62, ())))

    def generate(self, prompts: str | Sequence[str], **params) -> Completion | list[Completion]:
        """Continue raw text prompts (no chat template); one Completion per prompt (or one for a str)."""
        single = isinstance(prompts, str)
        items = [prompts] if single else list(prompts)
        out = self.complete_ids([self.encode_text(p) for p in items], [SamplingParams(**params)] * len(items))
        return out[0] if single else out

    def chat(self, messages: Sequence[dict], **params) -> Completion:
        """The assistant's reply to a conversation of {"role", "content"} messages."""
        return self.complete_ids([self.encode_messages(messages)], [SamplingParams(**params)])[0]

    def answer(self, question: str, context: str | None = None, task: str | None = None, **params) -> str:
        """A short answer to `question`, from `context` when given (customer service: the notice).

        With `task` (a QA task in the folder's tasks.json), the question goes inside that task's
        instruction, as the model saw it in training; otherwise the context and question are the
        user's message.
        """
        text = f"{context}\n{question}" if context else question
        prompt = self.classifier.prompts([text], task)[0]
        params.setdefault("max_new_tokens", 64)
        return self.chat([{"role": "user", "content": prompt}], **params).text.strip()

    # ---- classification ------------------------------------------------------------------------
    def classify(self, texts: str | Sequence[str], labels: Sequence[str] | None = None, task: str | None = None,
                 batch_size: int = 32) -> list[dict[str, Any]]:
        """Each text's label and the probability of every label: log P(label <|im_end|> | prompt)
        summed over the label's tokens, softmax over the labels. The prompt is the task's first
        instruction around the text (with `task`), or the text itself (with `labels` only)."""
        return self.classifier.classify(texts, task, labels, batch_size)

    @property
    def classifier(self):
        """The label scorer over this model (also renders task prompts), made on first use."""
        if self._classifier is None:
            from instructgpt.inference.classify import LMClassifier
            self._classifier = LMClassifier(self.path, self.tasks, self.model, self.tokenizer)
        return self._classifier


class HeadsEngine:
    """A task-heads folder: `classify` works; text generation is refused with a clear error."""

    def __init__(self, path: Path, device: str = "auto"):
        from instructgpt.inference.classify import HeadsClassifier
        self.path, self.name = path, path.name
        self.classifier = HeadsClassifier(path, device)
        self.tasks = self.classifier.tasks

    def classify(self, texts: str | Sequence[str], labels: Sequence[str] | None = None, task: str | None = None,
                 batch_size: int = 32) -> list[dict[str, Any]]:
        return self.classifier.classify(texts, task, labels, batch_size)

    def _refuse(self, *args, **kwargs):
        raise heads_cannot_generate(self.path)

    generate = chat = answer = complete_ids = _refuse


def load(path: str | Path, device: str = "auto", dtype: str = "auto", generates: bool = False
         ) -> Engine | HeadsEngine:
    """`instructgpt.load(path)`: the engine for a model folder (`generates`: refuse a task-heads folder)."""
    return Engine.from_checkpoint(path, device, dtype, generates)


def classify(model_dir: str | Path, texts: Sequence[str], task: str | None = None,
             labels: Sequence[str] | None = None, batch_size: int = 32, device: str = "auto") -> list[dict[str, Any]]:
    """The function form: load the folder (heads or causal LM) and classify `texts`."""
    return load(model_dir, device).classify(texts, labels, task, batch_size)
