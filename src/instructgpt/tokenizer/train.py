"""Byte-level BPE training with HF `tokenizers`, saved as a `PreTrainedTokenizerFast` folder."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from instructgpt.config.errors import UserError
from instructgpt.tokenizer.chat import CHAT_TEMPLATE, SPECIAL_TOKENS, SPECIAL_TOKENS_LIST


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """Train byte-level BPE; digits are split one per token so arithmetic is learnable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS_LIST,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL_TOKENS["bos"], eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"], mask_token=SPECIAL_TOKENS["mask"],
        additional_special_tokens=[SPECIAL_TOKENS["im_start"], SPECIAL_TOKENS["im_end"]])
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1_000_000  # models set their own context length
    return fast


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer
    if not Path(path).is_dir():
        raise UserError(f"{path}: tokenizer folder not found (run `instructgpt tokenizer` first)")
    if not any((Path(path) / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise UserError(f"{path}: no tokenizer in this folder (no tokenizer.json); key tokenizer: give the folder "
                        f"of the model's tokenizer")
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # transformers and tokenizers raise many types for a damaged file
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path}: the tokenizer files cannot be read ({type(e).__name__}: {reason}); give an intact "
                        f"tokenizer folder (key tokenizer)") from None
