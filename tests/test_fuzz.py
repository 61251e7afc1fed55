"""Bad input, fuzzed (hypothesis): random bytes, invalid UTF-8, JSON of the wrong types, deep
nesting, huge lines and empty files, fed to every record reader, the task loaders, the config
loader and the tokenizer. Each reads the file or ends in a one-line UserError that names it;
nothing else escapes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructgpt.config import UserError

FIELDS = ["prompt", "completion", "chosen", "rejected", "completions", "ranking", "scores", "reference", "task",
          "messages", "role", "content", "text", "instruction", "input", "output", "name", "kind", "cluster",
          "metric", "instructions", "labels", "examples", "Definition", "Instances", "Positive Examples",
          "train", "optim", "lr", "max_steps", "model", "out", "corpus"]
SCALARS = st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.text(max_size=12)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=6),
                      max_leaves=24)
RECORDS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)


def jsonl(values) -> bytes:
    return "\n".join(json.dumps(v) for v in values).encode()


CONTENT = st.one_of(
    st.binary(max_size=300),                                                  # random bytes, invalid UTF-8
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),  # any text, lone surrogates too
    st.lists(RECORDS, min_size=1, max_size=4).map(jsonl),                     # objects with the wrong types
    st.lists(VALUES, min_size=1, max_size=4).map(jsonl),                      # JSON values of every kind
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),                  # deep nesting
    st.integers(1, 5000).map(lambda n: b'{"text": ' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"\n\n  \n", b"\xef\xbb\xbf", b"\x00" * 64]),       # empty, blank, a BOM, NULs
    st.integers(200_000, 400_000).map(lambda n: json.dumps({"text": "a" * n, "prompt": "b" * n}).encode()),
)
# The default run is derandomized (the same 40 inputs a test every time: CI cannot turn red on a new
# draw); FUZZ_EXAMPLES=2000 makes a deeper, random search.
DEEP = int(os.environ.get("FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=DEEP or 40, derandomize=not DEEP, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def check(read, content: bytes, suffix: str) -> None:
    """`read(path)` on a file holding `content` returns, or raises a one-line UserError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(content)
        try:
            read(path)
        except UserError as e:
            message = str(e)
            assert path.name in message or str(path.parent) in message, message
            assert "\n" not in message, message


@FUZZ
@given(content=CONTENT, gz=st.sampled_from(["no", "raw bytes", "compressed"]))
def test_jsonl_records(content, gz):
    import gzip
    from instructgpt.data.records import iter_jsonl
    if gz == "compressed":
        content = gzip.compress(content)
    check(lambda p: list(iter_jsonl(p)), content, ".jsonl" if gz == "no" else ".jsonl.gz")


@FUZZ
@given(content=CONTENT, suffix=st.sampled_from([".txt", ".jsonl"]))
def test_pretraining_documents(content, suffix):
    from instructgpt.data.records import iter_documents
    check(lambda p: list(iter_documents([p])), content, suffix)


@FUZZ
@given(content=CONTENT, skip=st.booleans())
def test_comparisons(content, skip):
    from instructgpt.data.comparisons import load_comparisons
    check(lambda p: load_comparisons(p, skip_invalid=skip), content, ".jsonl")


@FUZZ
@given(content=CONTENT, skip=st.booleans())
def test_sft_record_files(content, skip):
    from instructgpt.config import SFTConfig
    from instructgpt.data.sft import load_task_data
    check(lambda p: load_task_data(SFTConfig(data=[{"path": str(p), "skip_invalid": skip}], n_val=0, n_test=0)),
          content, ".jsonl")


@FUZZ
@given(content=st.one_of(CONTENT, VALUES.map(lambda v: json.dumps(v).encode()),
                         RECORDS.map(lambda r: json.dumps(r).encode())))
def test_task_files(content):
    from instructgpt.tasks.loaders import load_task_file
    check(load_task_file, content, ".json")


@FUZZ
@given(content=st.one_of(CONTENT, RECORDS.map(lambda r: json.dumps(r).encode())))
def test_config_files(content):
    from instructgpt.config import PretrainConfig, load_config
    check(lambda p: load_config(PretrainConfig, p), content, ".yaml")


@FUZZ
@given(content=CONTENT)
def test_tokenizer_folders(content):
    from instructgpt.tokenizer.train import load_tokenizer

    def read(path: Path) -> None:
        path.rename(path.with_name("tokenizer.json"))
        load_tokenizer(path.parent)
    check(read, content, ".json")


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    return tokenizer


@FUZZ
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=4))
def test_any_text_encodes_as_a_conversation(chat_tokenizer, texts):
    from instructgpt.tokenizer.chat import encode_chat
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
    ids, mask = encode_chat(chat_tokenizer, messages)
    assert len(ids) == len(mask) and all(0 <= i < len(chat_tokenizer) for i in ids)
