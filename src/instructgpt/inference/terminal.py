"""`instructgpt generate MODEL PROMPT` and `instructgpt chat MODEL`: replies streamed to the terminal."""
from __future__ import annotations

import sys
from typing import TextIO

from instructgpt.inference.engine import Completion, Engine, SamplingParams
from instructgpt.inference.stream import TextStream

HELP = "commands: /reset forgets the conversation, /exit (or Ctrl-D) quits"


def stream_reply(engine: Engine, prompt_ids: list[int], params: SamplingParams, out: TextIO) -> Completion:
    """Decode one prompt, writing text to `out` as it comes."""
    text = TextStream(engine.tokenizer, params.stop)

    def sink(row: int, token: int) -> bool:
        out.write(text.push(token))
        out.flush()
        return False

    completion = engine.complete_ids([prompt_ids], [params], sink)[0]
    out.write(text.finish(completion.text))
    out.flush()
    return completion


def generate(engine: Engine, prompt: str, params: SamplingParams, chat: bool, out: TextIO = sys.stdout) -> Completion:
    """Continue `prompt` (raw text) or, with `chat`, answer it as the user's message."""
    ids = engine.encode_messages([{"role": "user", "content": prompt}]) if chat else engine.encode_text(prompt)
    completion = stream_reply(engine, ids, params, out)
    out.write("\n")
    return completion


def chat(engine: Engine, params: SamplingParams, system: str | None = None, inp: TextIO = sys.stdin,
         out: TextIO = sys.stdout) -> None:
    """A conversation on the terminal: each line is a user turn; the reply streams back."""
    history = [{"role": "system", "content": system}] if system else []
    interactive = inp.isatty()
    out.write(f"chatting with {engine.name} ({HELP})\n")
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        line = inp.readline()
        if not line or line.strip() == "/exit":
            break
        line = line.rstrip("\n")
        if line.strip() == "/reset":
            history = history[:1] if system else []
            out.write("(conversation cleared)\n")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        out.write(f"{engine.name}> ")
        completion = stream_reply(engine, engine.encode_messages(history), params, out)
        out.write("\n" if completion.finish_reason != "length" else " […max tokens]\n")
        history.append({"role": "assistant", "content": completion.text})
