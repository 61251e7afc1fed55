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
    return encode_chats(tokenizer, [messages], add_generation_prompt)[0]


def encode_chats(tokenizer, conversations: Sequence[Sequence[dict]], add_generation_prompt: bool = False,
                 ) -> list[tuple[list[int], list[bool]]]:
    """`encode_chat` of each conversation: every message's content in one batch call to the
    tokenizer, the role headers once (12,001 of the demo's SFT examples: 0.44 s, against 1.03 s one call each)."""
    im_start = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_start"])
    im_end = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["im_end"])
    if im_start == tokenizer.unk_token_id or im_start is None:
        raise ValueError("tokenizer has no <|im_start|> token; it is not a ChatML tokenizer")
    for messages in conversations:
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLES or not isinstance(content, str):
                raise ValueError(f"message {i}: needs role in {ROLES} and string content (got {message!r})")
    newline = tokenizer.encode("\n", add_special_tokens=False)
    roles = {message["role"] for messages in conversations for message in messages}
    header = {role: [im_start] + tokenizer.encode(f"{role}\n", add_special_tokens=False)
              for role in roles | ({"assistant"} if add_generation_prompt else set())}
    contents = [message["content"] for messages in conversations for message in messages]
    pieces = iter(_encode_batch(tokenizer, contents))
    encoded = []
    for messages in conversations:
        ids: list[int] = []
        mask: list[bool] = []
        for message in messages:
            head, content = header[message["role"]], next(pieces) + [im_end]
            ids += head + content + newline
            mask += [False] * len(head) + [message["role"] == "assistant"] * len(content) + [False] * len(newline)
        if add_generation_prompt:
            ids += header["assistant"]
            mask += [False] * len(header["assistant"])
        encoded.append((ids, mask))
    return encoded


def _encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """`tokenizer.encode(text, add_special_tokens=False)` of each text; through the Rust tokenizer's
    batch call when there is one (2.6× faster than the HF wrapper's batch call on 24k texts)."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]
