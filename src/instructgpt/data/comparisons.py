"""Reward / DPO records (DESIGN.md §4): rankings, pairs and whole HH dialogues, read as ranked
completions of one chat prompt, with file:line errors for every malformed record."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from instructgpt.config.errors import UserError
from instructgpt.data.records import iter_jsonl
from instructgpt.tokenizer.chat import ROLES
from instructgpt.utils.logging import info

SHAPES = ('{"prompt","completions","ranking"}, {"prompt","chosen","rejected"} or whole dialogues '
          '{"chosen","rejected"}')
_TURN = re.compile(r"\n\n(Human|Assistant): ")


@dataclass(frozen=True)
class Comparison:
    """One prompt and K ≥ 2 completions ranked by a labeler (a pair is K = 2)."""

    prompt: tuple[dict[str, str], ...]  # chat messages before the answer
    completions: tuple[str, ...]
    ranks: tuple[int, ...]              # rank of each completion, 0 = best; equal ranks are a tie
    task: str | None = None
    reference: str | None = None        # a demonstration for the prompt (the RM's zero point)

    def pairs(self, scheme: str = "all") -> Iterator[tuple[int, int]]:
        """(better, worse) completion indices: every untied pair, or the best against each other."""
        best = min(self.ranks)
        for w, rw in enumerate(self.ranks):
            for l, rl in enumerate(self.ranks):
                if rw < rl and (scheme == "all" or rw == best):
                    yield w, l


def load_comparisons(path: str | Path, limit: int | None = None, skip_invalid: bool = False
                     ) -> list[Comparison]:
    """Every record of a JSONL file (`.gz` too) as a Comparison. The first bad line stops with
    file:line, unless `skip_invalid`, which skips bad lines and reports how many."""
    out, skipped = [], []
    for lineno, record in iter_jsonl(path):
        try:
            out.append(to_comparison(record, f"{path}:{lineno}"))
        except UserError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
        if limit and len(out) >= limit:
            break
    if skipped:
        info(f"skipped {len(skipped)} bad record(s) of {path} (skip_invalid), the first: {skipped[0]}")
    if not out:
        raise UserError(f"{path}: no comparison records")
    return out


def to_comparison(record: dict[str, Any], where: str) -> Comparison:
    task, reference = record.get("task"), record.get("reference")
    if "completions" in record or "ranking" in record:
        prompt = _prompt(record, where)
        completions = _completions(record.get("completions"), where)
        ranks = _ranks(record.get("ranking"), len(completions), where)
        if record.get("scores") is not None:  # equal labeler scores are a tie
            ranks = _ties(ranks, record["scores"], where)
        return Comparison(prompt, completions, ranks, task, reference)
    if "chosen" in record and "rejected" in record:
        if "prompt" in record:
            prompt = _prompt(record, where)
            chosen, rejected = _completions([record["chosen"], record["rejected"]], where, ("chosen", "rejected"))
        else:
            prompt, chosen, rejected = _split_dialogues(record, where)
        if chosen.strip() == rejected.strip():
            raise UserError(f"{where}: chosen equals rejected; a pair must hold two different completions")
        return Comparison(prompt, (chosen, rejected), (0, 1), task, reference)
    raise UserError(f"{where}: not a comparison record (found fields: {', '.join(record) or 'none'}); "
                    f"expected {SHAPES}")


def _prompt(record: dict[str, Any], where: str) -> tuple[dict[str, str], ...]:
    prompt = record.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return ({"role": "user", "content": prompt},)
    if isinstance(prompt, list) and prompt and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in prompt):
        return tuple({"role": m["role"], "content": m["content"]} for m in prompt)
    state = "is missing" if prompt is None else "must be a non-empty string or a list of {role, content}"
    raise UserError(f'{where}: field "prompt" {state}')


def _completions(value: Any, where: str, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < 2:
        found = len(value) if isinstance(value, list) else type(value).__name__
        raise UserError(f'{where}: field "completions" needs a list of K ≥ 2 strings (found {found})')
    for i, c in enumerate(value):
        name = names[i] if names else f"completions[{i}]"
        if not isinstance(c, str) or not c.strip():
            raise UserError(f'{where}: {name} is {"empty" if isinstance(c, str) else "not a string"}; '
                            f"every completion needs text")
    return tuple(value)


def _ranks(ranking: Any, k: int, where: str) -> tuple[int, ...]:
    """`ranking` lists completion indices best..worst; returns each completion's rank."""
    if not isinstance(ranking, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ranking):
        raise UserError(f'{where}: field "ranking" must list completion indices, best first (e.g. [2, 0, 1])')
    bad = [i for i in ranking if not 0 <= i < k]
    repeated = sorted({i for i in ranking if ranking.count(i) > 1})
    missing = sorted(set(range(k)) - set(ranking))
    if bad or repeated or missing:
        problem = (f"index {bad[0]} is out of range" if bad else f"repeats index {repeated[0]}" if repeated
                   else f"misses index {missing[0]}")
        raise UserError(f'{where}: field "ranking" {problem}; it must hold each of 0..{k - 1} once, best first')
    ranks = [0] * k
    for position, index in enumerate(ranking):
        ranks[index] = position
    return tuple(ranks)


def _ties(ranks: tuple[int, ...], scores: Any, where: str) -> tuple[int, ...]:
    if not isinstance(scores, list) or len(scores) != len(ranks) or not all(
            isinstance(s, (int, float)) for s in scores):
        raise UserError(f'{where}: field "scores" must hold one number per completion')
    order = sorted(range(len(ranks)), key=lambda i: ranks[i])
    if any(scores[a] < scores[b] for a, b in zip(order, order[1:])):
        raise UserError(f'{where}: field "scores" disagrees with "ranking" (scores must not rise from best to worst)')
    tied = list(ranks)
    for a, b in zip(order, order[1:]):
        if scores[a] == scores[b]:
            tied[b] = tied[a]
    return tuple(tied)


def parse_dialogue(text: str, where: str) -> list[dict[str, str]]:
    """Anthropic HH text ("\\n\\nHuman: ...\\n\\nAssistant: ...") as chat messages."""
    parts = _TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise UserError(f'{where}: a dialogue must start with "\\n\\nHuman: " and alternate Human / Assistant turns')
    return [{"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
            for speaker, content in zip(parts[1::2], parts[2::2])]


def _split_dialogues(record: dict[str, Any], where: str) -> tuple[tuple[dict[str, str], ...], str, str]:
    """HH whole dialogues: the shared turns are the prompt, the last assistant turns the pair."""
    for name in ("chosen", "rejected"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise UserError(f'{where}: field "{name}" is empty; every completion needs text')
    chosen, rejected = parse_dialogue(record["chosen"], f"{where}: chosen"), \
        parse_dialogue(record["rejected"], f"{where}: rejected")
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise UserError(f"{where}: a dialogue pair must end with an Assistant turn in both chosen and rejected")
    if chosen[:-1] != rejected[:-1]:
        raise UserError(f"{where}: chosen and rejected differ before their last Assistant turn; "
                        f"no shared prompt (write it as {{\"prompt\",\"chosen\",\"rejected\"}})")
    return tuple(chosen[:-1]), chosen[-1]["content"], rejected[-1]["content"]


def pair_accuracy(comparisons: Sequence[Comparison], scores: Sequence[float]) -> float:
    """Fraction of untied pairs whose better completion scores higher; `scores` holds every
    completion of every comparison, in order."""
    right = total = first = 0
    for c in comparisons:
        for w, l in c.pairs():
            right += scores[first + w] > scores[first + l]
            total += 1
        first += len(c.completions)
    return right / total if total else float("nan")
