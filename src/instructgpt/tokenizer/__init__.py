"""Tokenizer: byte-level BPE training, ChatML template, messages -> ids + loss mask."""
from instructgpt.tokenizer.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, encode_chat, encode_chats

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "encode_chat", "encode_chats"]
