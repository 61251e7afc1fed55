"""The Task: a named set of (input, output) examples rendered as instructions."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instructgpt.config.schema import Metric
from instructgpt.utils.prompt import render_instruction

Kind = Literal["classification", "generation", "qa", "extraction", "arithmetic", "rewrite"]


class Example(BaseModel):
    """One instance. `references` lists every acceptable output (SNI has several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: str
    output: str
    references: tuple[str, ...] = ()

    def all_references(self) -> tuple[str, ...]:
        return self.references or (self.output,)


class Task(BaseModel):
    """A task as DESIGN.md §4 defines its file: metadata plus examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Kind
    cluster: str
    metric: Metric
    instructions: tuple[str, ...] = Field(min_length=1)
    labels: tuple[str, ...] | None = None
    examples: tuple[Example, ...] = ()

    @field_validator("instructions")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s.strip() for s in v):
            raise ValueError("an instruction is empty")
        return v

    @model_validator(mode="after")
    def _labels_for_classification(self) -> "Task":
        if self.kind == "classification" and not self.labels:
            raise ValueError("a classification task must list its 'labels'")
        return self

    def render(self, example: Example, template: int = 0) -> str:
        """The prompt for `example` under instruction `template` (index, wraps around)."""
        return render_instruction(self.instructions[template % len(self.instructions)], example.input)


@dataclass(frozen=True)
class BuiltinTask:
    """A procedurally generated task: metadata plus `generate(rng) -> Example`."""

    name: str
    kind: str
    cluster: str
    metric: str
    instructions: tuple[str, ...]
    generate: Callable[[random.Random], Example] = field(repr=False)
    labels: tuple[str, ...] | None = None

    def build(self, n: int, seed: int = 0) -> Task:
        """`n` distinct examples (as far as the task's space allows), deterministic in `seed`."""
        rng = random.Random(f"{seed}:{self.name}")
        seen: set[str] = set()
        examples: list[Example] = []
        attempts = 0
        while len(examples) < n:
            ex = self.generate(rng)
            attempts += 1
            if ex.input in seen and attempts < 20 * n:
                continue  # prefer distinct inputs; small spaces fall back to repeats
            seen.add(ex.input)
            examples.append(ex)
        return Task(name=self.name, kind=self.kind, cluster=self.cluster, metric=self.metric,
                    instructions=self.instructions, labels=self.labels, examples=tuple(examples))
