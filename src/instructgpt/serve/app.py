"""The OpenAI-compatible app: /v1/models, /v1/completions, /v1/chat/completions (streamed as
server-sent events ending in `data: [DONE]`), /health, and the web chat page at /.

One engine, one `Batcher` thread: concurrent requests wait in its queue and are decoded together.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from importlib import resources
from typing import Any, AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from instructgpt import __version__
from instructgpt.config import ServeConfig, UserError
from instructgpt.inference import Completion, Engine, SamplingParams
from instructgpt.inference.stream import Batcher, Busy, Job, TextStream
from instructgpt.serve.errors import ERROR_RESPONSES, APIError, BodyLimit, error_body, install_error_handlers
from instructgpt.serve.schema import ChatRequest, CompletionRequest, _Request


# 200 is JSON, or server-sent events with `stream: true`
STREAMS = {200: {"content": {"application/json": {}, "text/event-stream": {}}}}


class Server:
    """What the routes share: the engine, its batcher, the config and the served model's id."""

    def __init__(self, engine, cfg: ServeConfig):
        if not isinstance(engine, Engine):
            raise UserError(f"{cfg.model}: a task-heads classifier cannot be served as a chat model; "
                            f"serve a causal LM folder such as runs/NAME/sft")
        self.engine, self.cfg = engine, cfg
        self.model_id = cfg.name or engine.name
        self.created = int(time.time())
        self.batcher = Batcher(engine, cfg.max_batch, cfg.max_waiting, cfg.batch_wait_ms)

    # ---- request checks ------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.cfg.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(),
                                                                     self.cfg.api_key.encode()):
            raise APIError(401, "missing or wrong API key: send `Authorization: Bearer KEY`",
                           code="invalid_api_key")

    def params(self, req: _Request, max_tokens: int | None, prompt_ids: list[int]) -> list[SamplingParams]:
        """One SamplingParams per choice, after every limit check."""
        problem = req.unsupported()
        if problem:
            raise APIError(400, problem)
        if req.model not in (None, self.model_id):
            raise APIError(404, f"model '{req.model}' not found; this server serves '{self.model_id}'",
                           param="model", code="model_not_found")
        if req.n > self.cfg.max_n:
            raise APIError(400, f"n: at most {self.cfg.max_n} choices per request", param="n")
        wanted = max_tokens or self.cfg.default_max_tokens
        if wanted > self.cfg.max_tokens_limit:
            raise APIError(400, f"max_tokens: {wanted} is over this server's limit of {self.cfg.max_tokens_limit}",
                           param="max_tokens")
        if not prompt_ids:
            raise APIError(400, "the prompt is empty", param="prompt")
        if len(prompt_ids) > self.cfg.max_prompt_tokens:
            raise APIError(400, f"the prompt has {len(prompt_ids)} tokens; this server takes at most "
                                f"{self.cfg.max_prompt_tokens}", code="context_length_exceeded")
        if len(prompt_ids) + wanted > self.engine.max_length:
            raise APIError(400, f"prompt ({len(prompt_ids)} tokens) + max_tokens ({wanted}) exceeds the model's "
                                f"context of {self.engine.max_length} tokens", code="context_length_exceeded")
        return [SamplingParams(max_new_tokens=wanted, temperature=req.temperature, top_p=req.top_p,
                               top_k=req.top_k, stop=tuple(req.stop or ()),
                               seed=None if req.seed is None else req.seed + i) for i in range(req.n)]

    # ---- running jobs --------------------------------------------------------------------------
    def submit(self, prompts: list[list[int]], params: list[SamplingParams]) -> tuple[list[Job], asyncio.Queue]:
        """Queue one job per (prompt, params); events ("token"|"done", index, value) arrive on the queue."""
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def post(*event) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop closed (server shutting down)
                pass

        jobs = [Job(list(p), s, lambda tok, i=i: post("token", i, tok), lambda res, i=i: post("done", i, res))
                for i, (p, s) in enumerate(zip(prompts, params))]
        try:
            for job in jobs:
                self.batcher.submit(job)
        except Busy as e:
            for job in jobs:
                job.cancelled.set()
            raise APIError(429, f"server busy: {e}; retry shortly") from None
        return jobs, events

    async def results(self, jobs: list[Job], events: asyncio.Queue) -> list[Completion]:
        done: dict[int, Completion] = {}
        try:
            while len(done) < len(jobs):
                kind, index, value = await events.get()
                if kind == "done":
                    done[index] = raise_if_failed(value)
        finally:
            for job in jobs:
                job.cancelled.set()
        return [done[i] for i in range(len(jobs))]

    def envelope(self, kind: str) -> dict[str, Any]:
        prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
        return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()),
                "model": self.model_id}

    def token_text(self, token: int) -> str:
        return self.engine.tokenizer.decode([token], skip_special_tokens=False)


def raise_if_failed(value):
    if isinstance(value, UserError):
        raise APIError(400, str(value))
    if isinstance(value, BaseException):
        raise value
    return value


def usage(prompt_tokens: int, completions: list[Completion]) -> dict[str, int]:
    generated = sum(len(c.tokens) for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": generated, "total_tokens": prompt_tokens + generated}


def finish_reason(c: Completion) -> str:
    return "length" if c.finish_reason == "length" else "stop"


def sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def chat_messages(req: ChatRequest) -> list[dict[str, str]]:
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]


def build_app(engine, cfg: ServeConfig) -> FastAPI:
    """The FastAPI app for `engine` (an `inference.Engine`) under `cfg`'s limits."""
    server = Server(engine, cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        server.batcher.close()

    app = FastAPI(title="instructgpt", version=__version__, lifespan=lifespan,
                  description=f"OpenAI-compatible API serving '{server.model_id}'")
    app.state.server = server
    app.openapi = lambda: openapi_with_limits(app, cfg)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    auth = Depends(server.check_auth)
    page = resources.files("instructgpt.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        b = server.batcher
        return {"status": "ok", "model": server.model_id, "batches": b.batches, "largest_batch": b.largest_batch,
                "waiting": b.jobs.qsize()}

    def model_card() -> dict[str, Any]:
        return {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "instructgpt"}

    @app.get("/v1/models", dependencies=[auth], responses=ERROR_RESPONSES)
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model}", dependencies=[auth], responses=ERROR_RESPONSES)
    async def get_model(model: str) -> dict[str, Any]:
        if model != server.model_id:
            raise APIError(404, f"model '{model}' not found", param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions", dependencies=[auth], responses={**STREAMS, **ERROR_RESPONSES})
    async def chat_completions(req: ChatRequest):
        ids = engine.encode_messages(chat_messages(req))
        params = server.params(req, req.max_completion_tokens or req.max_tokens, ids)
        jobs, events = server.submit([ids] * len(params), params)
        if req.stream:
            opening = tuple({**chat_choice(i, ""), "delta": {"role": "assistant", "content": ""}}
                            for i in range(len(jobs)))
            return StreamingResponse(stream_sse(server, req, jobs, events, len(ids), "chat.completion.chunk",
                                                chat_choice, opening), media_type="text/event-stream")
        completions = await server.results(jobs, events)
        choices = [{"index": i, "message": {"role": "assistant", "content": c.text},
                    "logprobs": chat_logprobs(server, c) if req.logprobs else None,
                    "finish_reason": finish_reason(c)} for i, c in enumerate(completions)]
        return {**server.envelope("chat.completion"), "choices": choices, "system_fingerprint": None,
                "usage": usage(len(ids), completions)}

    @app.post("/v1/completions", dependencies=[auth], responses={**STREAMS, **ERROR_RESPONSES})
    async def completions(req: CompletionRequest):
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        prompts, params, prompt_tokens = [], [], 0
        for text in texts:
            ids = engine.encode_text(text)
            prompt_tokens += len(ids)
            for p in server.params(req, req.max_tokens, ids):
                prompts.append(ids)
                params.append(p)
        jobs, events = server.submit(prompts, params)
        if req.stream:
            return StreamingResponse(stream_sse(server, req, jobs, events, prompt_tokens, "text_completion",
                                                text_choice), media_type="text/event-stream")
        done = await server.results(jobs, events)
        choices = [{"index": i, "text": c.text, "finish_reason": finish_reason(c),
                    "logprobs": text_logprobs(server, c) if req.logprobs is not None else None}
                   for i, c in enumerate(done)]
        return {**server.envelope("text_completion"), "choices": choices, "usage": usage(prompt_tokens, done)}

    return app


def openapi_with_limits(app: FastAPI, cfg: ServeConfig) -> dict[str, Any]:
    """FastAPI's schema plus this server's limits on max_tokens and n, and its model id as the example."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for name in ("ChatRequest", "CompletionRequest"):
            fields = schema["components"]["schemas"][name]["properties"]
            for key, limit in (("max_tokens", cfg.max_tokens_limit), ("max_completion_tokens", cfg.max_tokens_limit),
                               ("n", cfg.max_n)):
                for option in fields.get(key, {}).get("anyOf", [fields.get(key, {})]):
                    if option.get("type") == "integer":
                        option["maximum"] = limit
        for parameter in schema["paths"]["/v1/models/{model}"]["get"].get("parameters", []):
            parameter["example"] = app.state.server.model_id
        app.openapi_schema = schema
    return app.openapi_schema


def chat_logprobs(server: Server, c: Completion) -> dict[str, Any]:
    content = []
    for token, logprob in zip(c.tokens, c.logprobs):
        text = server.token_text(token)
        content.append({"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []})
    return {"content": content}


def text_logprobs(server: Server, c: Completion) -> dict[str, Any]:
    tokens = [server.token_text(t) for t in c.tokens]
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": c.logprobs, "top_logprobs": None, "text_offset": offsets}


async def stream_events(server: Server, req: _Request, jobs: list[Job], events: asyncio.Queue
                        ) -> AsyncIterator[tuple[int, str | None, Completion | None]]:
    """(index, text delta, None) as text grows, then (index, rest, completion) when a choice ends."""
    streams = [TextStream(server.engine.tokenizer, req.stop or ()) for _ in jobs]
    finished = 0
    try:
        while finished < len(jobs):
            kind, index, value = await events.get()
            if kind == "token":
                delta = streams[index].push(value)
                if delta:
                    yield index, delta, None
            else:
                finished += 1
                completion = raise_if_failed(value)
                yield index, streams[index].finish(completion.text), completion
    finally:  # the client went away or we are done: stop decoding these rows
        for job in jobs:
            job.cancelled.set()


def chat_choice(index: int, text: str | None, reason: str | None = None) -> dict[str, Any]:
    """A chat stream's choice: text None is the empty delta that carries the finish reason."""
    return {"index": index, "delta": {} if text is None else {"content": text}, "logprobs": None,
            "finish_reason": reason}


def text_choice(index: int, text: str | None, reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "text": text or "", "logprobs": None, "finish_reason": reason}


async def stream_sse(server: Server, req: _Request, jobs: list[Job], events: asyncio.Queue, prompt_tokens: int,
                     kind: str, choice, opening: tuple[dict, ...] = ()) -> AsyncIterator[str]:
    """Server-sent events of one request: `opening` choices, text deltas as they come, each choice's
    finish reason, the usage chunk when asked for, then `data: [DONE]`."""
    head = server.envelope(kind)

    def chunk(*choices: dict) -> str:
        return sse({**head, "choices": list(choices)})

    for first in opening:
        yield chunk(first)
    done = []
    try:
        async for index, delta, completion in stream_events(server, req, jobs, events):
            if delta:
                yield chunk(choice(index, delta))
            if completion is not None:
                done.append(completion)
                yield chunk(choice(index, None, finish_reason(completion)))
    except APIError as e:
        yield sse(error_body(e.status, e.message, e.param, e.code))
    if req.include_usage():
        yield sse({**head, "choices": [], "usage": usage(prompt_tokens, done)})
    yield sse("[DONE]")


def check_bindable(host: str, port: int) -> None:
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"host '{host}': {e.strerror} (key host)") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror}; pass --port N (or --host)") from None


def serve(cfg: ServeConfig) -> None:
    """Load the model and run uvicorn until Ctrl-C."""
    import uvicorn
    from instructgpt.inference import load
    from instructgpt.utils.logging import info
    check_bindable(cfg.host, cfg.port)  # before the model loads: a taken port is a one-line error, at once
    engine = load(cfg.model, cfg.device, cfg.dtype, generates=True)
    app = build_app(engine, cfg)
    where = f"http://{cfg.host}:{cfg.port}"
    info(f"serving '{app.state.server.model_id}' at {where}/v1 (chat page: {where}/)"
         + ("; API key required" if cfg.api_key else ""))
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
