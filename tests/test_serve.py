"""`instructgpt serve`: the official `openai` client against a live server on a loopback port,
server-sent events, OpenAI-style 4xx errors, the API key, limits, concurrent clients, the chat page
in headless Chromium, and schemathesis over the OpenAPI schema."""
from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import instructgpt
from conftest import chromium_driver, needs_chromium
from instructgpt.config import ServeConfig
from instructgpt.serve import build_app

KEY = "sk-test-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on a free loopback port in a thread of this process."""

    def __init__(self, app):
        import uvicorn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def engine(chat_model_dir):
    return instructgpt.load(chat_model_dir)


def config(chat_model_dir, **kw) -> ServeConfig:
    return ServeConfig(model=str(chat_model_dir), name="tiny-chat", max_tokens_limit=64, default_max_tokens=16,
                       max_prompt_tokens=128, max_body_bytes=20_000, **kw)


@pytest.fixture(scope="module")
def live(engine, chat_model_dir):
    with LiveServer(build_app(engine, config(chat_model_dir))) as server:
        yield server


@pytest.fixture(scope="module")
def live_with_key(engine, chat_model_dir):
    with LiveServer(build_app(engine, config(chat_model_dir, api_key=KEY))) as server:
        yield server


def client(url: str, key: str = "none"):
    from openai import OpenAI
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_lists_completes_chats_and_streams(live, engine):
    api = client(live.url)
    assert [m.id for m in api.models.list().data] == ["tiny-chat"]

    done = api.completions.create(model="tiny-chat", prompt="the cat", max_tokens=6, temperature=0)
    expected = engine.generate("the cat", max_new_tokens=6)
    assert done.choices[0].text == expected.text
    assert done.choices[0].finish_reason == ("length" if expected.finish_reason == "length" else "stop")
    assert done.usage.prompt_tokens == expected.prompt_tokens
    assert done.usage.completion_tokens == len(expected.tokens)

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    chat = api.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == engine.chat(messages, max_new_tokens=8).text

    pieces, reasons = [], []
    for chunk in api.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0,
                                             stream=True):
        assert chunk.model == "tiny-chat"
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "".join(pieces) == chat.choices[0].message.content
    assert reasons[-1] == chat.choices[0].finish_reason and all(r is None for r in reasons[:-1])

    streamed = "".join(c.choices[0].text for c in api.completions.create(
        model="tiny-chat", prompt="the cat", max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == done.choices[0].text


def test_n_choices_seeds_and_logprobs(live):
    api = client(live.url)
    out = api.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], n=3,
                                      temperature=1.0, seed=7, max_tokens=6, logprobs=True)
    again = api.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], n=3,
                                        temperature=1.0, seed=7, max_tokens=6, logprobs=True)
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert [c.message.content for c in out.choices] == [c.message.content for c in again.choices]
    tokens = out.choices[0].logprobs.content
    assert tokens and all(t.logprob <= 0 for t in tokens)
    assert out.usage.completion_tokens == sum(len(c.logprobs.content) for c in out.choices)


def test_raw_stream_is_server_sent_events_ending_in_done(live):
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True, "max_tokens": 5,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{live.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    usage = json.loads(events[-2][6:])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 1


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize("body, status, fragment", [
    ({"model": "tiny-chat"}, 400, "messages"),                                              # missing field
    ({"messages": "hello"}, 400, "messages"),                                               # wrong type
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -3}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}, 400, "over this server's limit"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 99}, 400, "at most 8 choices"),
    ({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"5": 3}}, 400, "logit_bias"),
    ({"messages": [{"role": "user", "content": "hi"}], "top_k": 2**63}, 400, "top_k"),          # found by schemathesis
    ({"messages": [{"role": "user", "content": "word " * 200}]}, 400, "takes at most 128"),  # over-long prompt
    ({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-9"}, 404, "gpt-9"),
])
def test_bad_chat_requests_get_openai_style_4xx(live, body, status, fragment):
    r = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert fragment in error_of(r)["message"]


def test_invalid_json_oversized_bodies_and_unknown_routes(live):
    r = httpx.post(f"{live.url}/v1/chat/completions", content=b"{not json", timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in error_of(r)["message"]
    r = httpx.post(f"{live.url}/v1/completions", json={"prompt": "x" * 30_000}, timeout=30)
    assert r.status_code == 413 and "20000 bytes" in error_of(r)["message"]
    r = httpx.post(f"{live.url}/v1/completions", json=["a list"], timeout=30)
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_request_error"
    r = httpx.get(f"{live.url}/v1/nothing", timeout=30)
    assert r.status_code == 404 and error_of(r)["type"] == "not_found_error"
    assert httpx.get(f"{live.url}/v1/models/tiny-chat", timeout=30).json()["id"] == "tiny-chat"
    assert httpx.get(f"{live.url}/v1/models/..%2F..%2Fetc%2Fpasswd", timeout=30).status_code == 404


def test_api_key_is_enforced_on_the_api_only(live_with_key):
    url = live_with_key.url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = httpx.get(f"{url}/v1/models", headers=headers, timeout=30)
        assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
    from openai import AuthenticationError
    with pytest.raises(AuthenticationError):
        client(url, "wrong").models.list()
    assert [m.id for m in client(url, KEY).models.list().data] == ["tiny-chat"]
    assert httpx.get(f"{url}/health", timeout=30).status_code == 200
    assert httpx.get(f"{url}/", timeout=30).status_code == 200


def test_concurrent_clients_are_batched_and_all_answered(live):
    before = httpx.get(f"{live.url}/health", timeout=30).json()

    def ask(i: int) -> str:
        api = client(live.url)
        out = api.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": f"question {i}"}],
                                          max_tokens=12, temperature=0)
        return out.choices[0].message.content

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(16)))
    assert len(answers) == 16 and all(isinstance(a, str) for a in answers)
    after = httpx.get(f"{live.url}/health", timeout=30).json()
    assert after["largest_batch"] > 1                      # requests shared decoding batches
    assert after["batches"] - before["batches"] < 16


def test_a_heads_folder_cannot_be_served(tmp_path):
    from instructgpt.config import UserError

    class Heads:  # what HeadsEngine offers: classify only
        name = "heads"

        def classify(self, *a, **k):
            return []
    with pytest.raises(UserError, match="task-heads classifier cannot be served"):
        build_app(Heads(), ServeConfig(model=str(tmp_path)))


@needs_chromium
def test_web_chat_page_streams_a_reply_in_headless_chromium(live, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver = chromium_driver(tmp_path / "profile", size="1000,700")
    try:
        driver.get(live.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "model-name").text == "tiny-chat")
        driver.find_element(By.ID, "max-tokens").clear()
        driver.find_element(By.ID, "max-tokens").send_keys("24")
        driver.find_element(By.ID, "input").send_keys("Write the word backwards: house")
        driver.find_element(By.ID, "send").click()
        reply = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".assistant[data-done='true']"))
        assert reply.find_element(By.CSS_SELECTOR, ".who").text == "tiny-chat"   # which model answers
        assert "error" not in (reply.get_attribute("class") or "")
        assert int(reply.get_attribute("data-chunks") or 0) > 1                 # arrived in pieces
        assert reply.find_element(By.CSS_SELECTOR, ".text").text.strip()
        shot = tmp_path / "chat.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 5_000
    finally:
        driver.quit()


# ---- schemathesis: requests generated from the OpenAPI schema, valid and not, never get a 5xx --------
def test_schemathesis_finds_no_server_errors(engine, chat_model_dir):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
    app = build_app(engine, config(chat_model_dir).model_copy(update={"max_tokens_limit": 8, "default_max_tokens": 4,
                                                                      "max_n": 2}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /v1/models", "POST /v1/completions", "POST /v1/chat/completions", "GET /health"}
    statuses: dict[str, set[int]] = {}
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    for op, mode in ((op, mode) for op in operations for mode in modes if op.method == "post" or mode == modes[0]):
        @given(case=op.as_strategy(mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                                      content_type_conformance])
            statuses.setdefault(f"{op.method.upper()} {op.path}", set()).add(response.status_code)
        check()
    # valid requests reached the model (200), invalid ones its validation (400)
    assert {200, 400} <= statuses["POST /v1/chat/completions"]
    assert {200, 400} <= statuses["POST /v1/completions"]


def test_extreme_but_valid_sampling_values_are_answered(live, engine):
    messages = [{"role": "user", "content": "hello"}]
    greedy = engine.chat(messages, max_new_tokens=6).text
    body = {"messages": messages, "max_tokens": 6, "seed": 2**63 - 1, "temperature": 1e-9, "top_p": 1e-9}
    r = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == greedy
    r = httpx.post(f"{live.url}/v1/chat/completions", json={**body, "seed": 2**63}, timeout=60)
    assert r.status_code == 400 and error_of(r)["param"] == "seed"


def test_a_taken_port_is_a_one_line_error_before_the_model_loads():
    from instructgpt.config import UserError
    from instructgpt.serve.app import check_bindable
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            check_bindable("127.0.0.1", port)
    check_bindable("127.0.0.1", free_port())  # a free one passes
