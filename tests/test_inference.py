"""The Python API: `instructgpt.load(path)` -> generate / chat / classify / answer; the batcher and
text streaming the server builds on; the terminal commands; misuse gets one-line errors."""
from __future__ import annotations

import io
import json
import threading

import pytest
import torch

import instructgpt
from conftest import run_cli
from instructgpt.config import UserError
from instructgpt.inference import Engine, SamplingParams
from instructgpt.inference.stream import Batcher, Job, TextStream
from instructgpt.tokenizer.chat import encode_chat


@pytest.fixture(scope="module")
def engine(chat_model_dir) -> Engine:
    return instructgpt.load(chat_model_dir)


def test_load_returns_an_engine_named_after_the_folder(engine, chat_model_dir):
    assert isinstance(engine, Engine) and engine.name == chat_model_dir.name
    assert engine.max_length == 256


def test_generate_and_chat_decode_greedily_like_the_model(engine):
    one = engine.generate("the cat", max_new_tokens=6)
    assert one.finish_reason in ("stop", "length") and one.prompt_tokens == len(engine.encode_text("the cat"))
    many = engine.generate(["the cat", "a dog ran"], max_new_tokens=6)
    assert [c.tokens for c in many][0] == one.tokens  # batching does not change a greedy reply
    # the reply is the model's own greedy continuation, token by token
    ids = engine.encode_text("the cat")
    expected = []
    for _ in range(len(one.tokens)):
        logits = engine.model(input_ids=torch.tensor([ids + expected])).logits[0, -1]
        expected.append(int(logits.argmax()))
    assert one.tokens == expected
    assert all(lp <= 0 for lp in one.logprobs) and len(one.logprobs) == len(one.tokens)

    messages = [{"role": "user", "content": "hello there"}]
    reply = engine.chat(messages, max_new_tokens=5)
    ids, _ = encode_chat(engine.tokenizer, messages, add_generation_prompt=True)
    assert reply.prompt_tokens == len(ids)


def test_sampling_is_seeded(engine):
    a = engine.generate("the cat", max_new_tokens=8, temperature=1.0, seed=5)
    b = engine.generate("the cat", max_new_tokens=8, temperature=1.0, seed=5)
    assert a.tokens == b.tokens


def test_max_new_tokens_is_per_prompt_in_one_batch(engine):
    short, long = engine.complete_ids([engine.encode_text("a"), engine.encode_text("b")],
                                      [SamplingParams(max_new_tokens=2), SamplingParams(max_new_tokens=7)])
    assert len(short.tokens) <= 2 and len(long.tokens) <= 7
    assert short.finish_reason == "stop" or (short.finish_reason == "length" and len(short.tokens) == 2)


def test_classify_gives_label_logprobs_and_probabilities(engine):
    out = engine.classify(["what a lovely day", "I lost my keys"], task="mood")
    assert [sorted(r["probs"]) for r in out] == [["happy", "sad"]] * 2
    for r in out:
        assert abs(sum(r["probs"].values()) - 1) < 1e-5
        assert r["label"] == max(r["probs"], key=r["probs"].get)
        assert all(v < 0 for v in r["logprobs"].values())
    free = engine.classify("it rains", labels=["weather", "sports", "food"])
    assert set(free[0]["probs"]) == {"weather", "sports", "food"}


def test_answer_uses_the_task_instruction_and_context(engine):
    text = engine.answer("When do you open?", context="We open at 9 am.", task="shop_qa", max_new_tokens=4)
    assert isinstance(text, str)
    with pytest.raises(UserError, match="unknown task 'nope'"):
        engine.answer("q", task="nope")


def test_bad_parameters_and_prompts_are_one_line_errors(engine):
    for bad, match in [(dict(temperature=-1), "temperature"), (dict(top_p=0), "top_p"),
                       (dict(max_new_tokens=0), "max_new_tokens")]:
        with pytest.raises(UserError, match=match):
            engine.generate("x", **bad)
    with pytest.raises(UserError, match="exceeds the model's context of 256"):
        engine.generate("word " * 300, max_new_tokens=4)
    with pytest.raises(UserError, match="empty prompt"):
        engine.generate("", max_new_tokens=4)
    with pytest.raises(UserError, match="labels=\\[...\\] or task=NAME"):
        engine.classify(["x"])


def test_folders_that_are_not_policies_are_refused(tmp_path, chat_model_dir):
    with pytest.raises(UserError, match="no such model folder"):
        instructgpt.load(tmp_path / "missing")
    rm = tmp_path / "rm"
    rm.mkdir()
    config = json.loads((chat_model_dir / "config.json").read_text())
    (rm / "config.json").write_text(json.dumps({**config, "architectures": ["LlamaForSequenceClassification"]}))
    with pytest.raises(UserError, match="a reward model .* not a policy"):
        instructgpt.load(rm)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(UserError, match="instructgpt import"):
        instructgpt.load(gguf)


def test_text_stream_holds_back_stop_string_prefixes_and_split_characters(tokenizer):
    ids = tokenizer.encode("one two three", add_special_tokens=False)
    stream = TextStream(tokenizer, stop=["thr"])
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) == "one two "
    assert stream.finish("one two ") == ""
    snowman = tokenizer.encode("☃!", add_special_tokens=False)  # a 3-byte character over several byte tokens
    plain = TextStream(tokenizer)
    pieces = [plain.push(i) for i in snowman]
    assert "\ufffd" not in "".join(pieces) and "".join(pieces) == "☃!"


def test_batcher_decodes_concurrent_jobs_together_and_honours_cancellation(engine):
    batcher = Batcher(engine, max_batch=4, wait_ms=200)
    results, done = {}, threading.Event()
    jobs = []

    def finish(i):
        def on_done(res):
            results[i] = res
            if len(results) == 4:
                done.set()
        return on_done

    for i in range(4):
        job = Job(engine.encode_text(f"prompt {i}"), SamplingParams(max_new_tokens=10), lambda t: None, finish(i))
        jobs.append(job)
    seen = []

    def stop_after_two(token):
        seen.append(token)
        if len(seen) == 2:
            jobs[3].cancelled.set()
    jobs[3].on_token = stop_after_two
    for job in jobs:
        batcher.submit(job)
    assert done.wait(60)
    batcher.close()
    assert batcher.largest_batch == 4 and batcher.batches == 1
    assert len(results[3].tokens) == 2 and results[3].finish_reason == "cancelled"
    assert all(len(results[i].tokens) >= 1 for i in range(3))


def test_terminal_chat_keeps_the_conversation_and_resets(engine):
    out = io.StringIO()
    from instructgpt.inference import terminal
    terminal.chat(engine, SamplingParams(max_new_tokens=3), inp=io.StringIO("hi\nmore\n/reset\nagain\n"), out=out)
    text = out.getvalue()
    assert text.count(f"{engine.name}> ") == 3 and "(conversation cleared)" in text


def test_generate_command_prints_the_reply(chat_model_dir, capsys):
    result = run_cli("generate", str(chat_model_dir), "hello", "--chat", "--max-tokens", "4")
    assert result.returncode == 0, result.stderr
    expected = instructgpt.load(chat_model_dir).chat([{"role": "user", "content": "hello"}], max_new_tokens=4).text
    assert result.stdout == expected + "\n"
    from instructgpt.cli import main  # in-process: the same exit code and stderr as the command
    assert main(["generate", str(chat_model_dir), "hello", "--temperature", "-2"]) != 0
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: temperature must be")
