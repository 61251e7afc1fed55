"""`instructgpt bench serve`: concurrent chat requests against `instructgpt serve` in its own process.

Every client starts at once (a barrier) and sends chat requests on loopback, one after another,
until the burst's requests are used up (default: one each); then the same again with
`stream: true`, timing the first content token. Prints how many succeeded, latency percentiles,
and generated tokens per second over the whole burst.
"""
from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from instructgpt.config.errors import UserError
from instructgpt.utils.logging import info

WORDS = ("house", "garden", "river", "pencil", "window", "planet", "orange", "silver", "rocket", "forest")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ask(url: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    first = None
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            if body.get("stream"):
                tokens = 0
                for line in response:
                    line = line.decode().strip()
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("usage"):
                        tokens = chunk["usage"]["completion_tokens"]
                    if first is None and any(c["delta"].get("content") for c in chunk.get("choices", [])):
                        first = time.perf_counter() - start
            else:
                tokens = json.loads(response.read())["usage"]["completion_tokens"]
            status = response.status
    except urllib.error.HTTPError as e:
        status, tokens = e.code, 0
    except OSError as e:
        status, tokens = f"{type(e).__name__}: {e}", 0
    return {"status": status, "seconds": time.perf_counter() - start, "first_token": first, "tokens": tokens}


def burst(url: str, clients: int, max_tokens: int, stream: bool, requests: int | None = None) -> dict:
    """`requests` chat requests (default: one per client) sent by `clients` threads at once."""
    requests = requests or clients
    barrier = threading.Barrier(clients)
    bodies = [{"messages": [{"role": "user", "content": f"Write the word backwards.\n\n{WORDS[i % len(WORDS)]}"}],
               "max_tokens": max_tokens, "temperature": 0, "stream": stream,
               **({"stream_options": {"include_usage": True}} if stream else {})} for i in range(requests)]
    queue = list(reversed(bodies))
    lock = threading.Lock()

    def client(_: int) -> list[dict]:
        barrier.wait()
        done = []
        while True:
            with lock:
                if not queue:
                    return done
                body = queue.pop()
            done.append(_ask(url, body))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        replies = [r for batch in pool.map(client, range(clients)) for r in batch]
    wall = time.perf_counter() - start
    ok = [r for r in replies if r["status"] == 200]
    latencies = [r["seconds"] for r in ok]
    out = {"clients": clients, "requests": requests, "stream": stream, "succeeded": len(ok), "wall_s": wall,
           "errors": sorted({str(r["status"]) for r in replies if r["status"] != 200}),
           "generated_tokens_per_s": sum(r["tokens"] for r in ok) / wall}
    if latencies:
        out.update(p50_s=statistics.median(latencies), p95_s=_percentile(latencies, 0.95), max_s=max(latencies))
    firsts = [r["first_token"] for r in ok if r["first_token"] is not None]
    if firsts:
        out.update(first_token_p50_s=statistics.median(firsts), first_token_p95_s=_percentile(firsts, 0.95))
    return out


def run(steps: int = 50, out: str = "benchmarks/results", model: str | None = None, max_tokens: int = 32,
        max_batch: int = 16, requests: int | None = None) -> list[dict]:
    """`steps` = concurrent clients per burst; `requests` in all per burst (default: one per client)."""
    folder = Path(model or "runs/demo/sft")
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: no model folder to serve; run `make demo` first or pass --model PATH")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "instructgpt", "serve", str(folder), "--port", str(port),
                               f"max_batch={max_batch}", f"max_tokens_limit={max(max_tokens, 1)}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise UserError(f"the server did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(0.3)
        info(f"bench serve: {folder} on {url}, max_batch {max_batch}; {requests or steps} requests from {steps} "
             f"clients at once, max_tokens {max_tokens}")
        results = [burst(url, steps, max_tokens, stream, requests) for stream in (False, True)]
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\n{requests or steps} chat requests from {steps} concurrent clients to {folder} (max_tokens {max_tokens}, "
          f"largest batch {health['largest_batch']}, {health['batches']} batches)")
    for r in results:
        kind = "streamed" if r["stream"] else "whole"
        line = (f"{kind:<9} {r['succeeded']}/{r['requests']} ok  p50 {r.get('p50_s', float('nan')):.2f} s  "
                f"p95 {r.get('p95_s', float('nan')):.2f} s  max {r.get('max_s', float('nan')):.2f} s  "
                f"{r['generated_tokens_per_s']:.0f} generated tokens/s")
        if "first_token_p50_s" in r:
            line += f"  first token p50 {r['first_token_p50_s']:.2f} s p95 {r['first_token_p95_s']:.2f} s"
        print(line + (f"  errors: {', '.join(r['errors'])}" if r["errors"] else ""))
    path = Path(out) / "serve.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": str(folder), "health": health, "results": results}, indent=2) + "\n")
    info(f"bench serve: results -> {path}")
    return results
