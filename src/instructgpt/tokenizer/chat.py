"""ChatML: special tokens, the chat template, and messages -> ids + loss mask."""
from __future__ import annotations

from typing import Sequence

SPECIAL_TOKENS = {
    "pad": "<|pad|>", "bos": "<|endoftext|>", "eos": "<|endoftext|>",
    "im_start": "<|im_start|>", "im_end": "<|im_end|>", "mask": "<|mask|>",
}
# A dict keeps insertion order; bos == eos, so SPECIAL_TOKENS.values() repeats one: dedupe on use.
SPECIAL_TOKENS_LIST = list(dict.fromkeys(SPECIAL_TOKENS.values()))

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ROLES = ("system", "user", "assistant")


def stop_ids(tokenizer) -> list[int]:
    """End of turn and end of text: a model trained here stops on the first."""
    ids = {tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"]), tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def encode_chat(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False,
                ) -> tuple[list[int], list[bool]]:
    """ChatML ids and a loss mask that is True on the assistant's content and its `<|im_end|>`.

    Pieces are tokenized separately so the mask boundaries are exact; special tokens are
    atomic, so this equals tokenizing the rendered template.
    """
    im_start = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_start"])
    im_end = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"])
    if im_start == tokenizer.unk_token_id or im_start is None:
        raise ValueError("tokenizer has no <|im_start|> token; it is not a ChatML tokenizer")
    newline = tokenizer.encode("\n", add_special_tokens=False)
    ids: list[int] = []
    mask: list[bool] = []

    def add(piece: list[int], on: bool) -> None:
        ids.extend(piece)
        mask.extend([on] * len(piece))

    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise ValueError(f"message {i}: needs role in {ROLES} and string content (got {message!r})")
        train = role == "assistant"
        add([im_start] + tokenizer.encode(f"{role}\n", add_special_tokens=False), False)
        add(tokenizer.encode(content, add_special_tokens=False) + [im_end], train)
        add(newline, False)
    if add_generation_prompt:
        add([im_start] + tokenizer.encode("assistant\n", add_special_tokens=False), False)
    return ids, mask
