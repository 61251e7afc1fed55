"""Request bodies of the OpenAI-compatible API (the subset we serve), as pydantic models.

Fields the OpenAI API has and we do not use (user, ...) are accepted and ignored, as other
OpenAI-compatible servers do; values that would change the answer in a way we cannot honour
(logit_bias, penalties other than 0, tools) are refused with 400. The served OpenAPI schema also
carries the server's own limits (max_tokens, n), so it describes exactly what is accepted.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="the served model's id (GET /v1/models); default: that model")
    max_tokens: int | None = Field(None, ge=1, description="tokens to generate at most")
    temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, lt=2**31, description="0 = no top-k filter; above the vocabulary keeps every "
                       "token (an extension of the OpenAI API)")
    n: int = Field(1, ge=1, description="choices to generate")
    stream: bool = False
    stop: str | Annotated[list[str], Field(max_length=4)] | None = Field(
        None, description="up to 4 strings that end the reply")
    seed: int | None = Field(None, ge=-(2**63), lt=2**63, description="makes a sampled reply reproducible")
    presence_penalty: float = Field(0.0, ge=0, le=0, description="not supported: 0 only")
    frequency_penalty: float = Field(0.0, ge=0, le=0, description="not supported: 0 only")
    logit_bias: dict[str, float] | None = Field(None, max_length=0, description="not supported: empty only")
    stream_options: dict | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        return [s for s in ([v] if isinstance(v, str) else (v or [])) if s]

    def unsupported(self) -> str | None:
        """The first extra field set to something we cannot honour, as an error message."""
        for name in ("tools", "functions", "tool_choice", "response_format", "suffix", "echo", "best_of"):
            value = (self.model_extra or {}).get(name)
            if value not in (None, False, [], {}, 1) and not (name == "response_format" and value == {"type": "text"}):
                return f"{name} is not supported"
        return None

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens")
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=0, description="alternatives are not returned; 0 or absent")


class CompletionRequest(_Request):
    prompt: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="text to continue (no chat template); a list gives one choice each")
    logprobs: int | None = Field(None, ge=0, le=0, description="0: the chosen tokens' log-probabilities")
