"""Tokenizer: BPE with single digits, special tokens, ChatML template and the assistant loss mask."""
from instructgpt.tokenizer import SPECIAL_TOKENS, encode_chat, encode_chats


def test_digits_are_single_tokens(tokenizer):
    ids = tokenizer.encode("12345 + 678", add_special_tokens=False)
    pieces = [tokenizer.decode([i]) for i in ids]
    assert [p for p in pieces if p.strip().isdigit()] == list("12345678")


def test_special_tokens_and_round_trip(tokenizer):
    for tok in SPECIAL_TOKENS.values():
        ids = tokenizer.encode(tok, add_special_tokens=False)
        assert len(ids) == 1, tok
    text = "The capital of France is Paris. Ünïcode ✓ 42"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert tokenizer.mask_token == "<|mask|>" and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_chat_mask_covers_assistant_and_end_of_turn(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse: cat"},
                {"role": "assistant", "content": "tac"}]
    ids, mask = encode_chat(tokenizer, messages)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert ids == tokenizer.encode(rendered, add_special_tokens=False)
    trained = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert trained == "tac<|im_end|>"
    # with a generation prompt the prefix matches the template too, and nothing is trained
    ids, mask = encode_chat(tokenizer, messages[:2], add_generation_prompt=True)
    assert ids == tokenizer.encode(tokenizer.apply_chat_template(messages[:2], tokenize=False,
                                                                 add_generation_prompt=True),
                                   add_special_tokens=False)
    assert not any(mask)


def test_batched_conversations_equal_the_template_one_by_one(tokenizer):
    conversations = [[{"role": "user", "content": f"Add {i} and {i * 7}."}, {"role": "assistant", "content": str(i * 8)}]
                     for i in range(5)]
    conversations += [[{"role": "system", "content": ""}, {"role": "user", "content": "héllo  \n ✓"},
                       {"role": "assistant", "content": ""}], [{"role": "user", "content": "only a question"}]]
    for generation_prompt in (False, True):
        batched = encode_chats(tokenizer, conversations, add_generation_prompt=generation_prompt)
        assert batched == [encode_chat(tokenizer, c, add_generation_prompt=generation_prompt) for c in conversations]
        for (ids, mask), messages in zip(batched, conversations):
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
            assert ids == tokenizer.encode(rendered, add_special_tokens=False) and len(mask) == len(ids)
    assert encode_chats(tokenizer, []) == []


def test_saved_folder_reloads_with_template(tokenizer_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert "<|im_start|>" in tok.chat_template
    assert (tokenizer_dir / "complete.json").is_file()
