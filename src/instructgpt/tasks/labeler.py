"""The labeler: a programmatic preference oracle standing in for InstructGPT's human labelers.

A response's quality is a weighted sum of features a labeler looks for (Ouyang et al. 2022,
App. B): correctness under the task's metric, following the instruction's form (one label
from `labels`, a bare number, one sentence that uses the given words, no more words than the
answer needs), no extra chatter, and a sensible length. A labeler ranks K responses by that
quality plus deterministic noise whose size is tuned so that its pairwise agreement with the
noiseless oracle (the `train` profile's weights, no noise) is a given rate, by default 0.75
(the paper's inter-labeler agreement was 72.6-77.3%). The `heldout` profile weighs the
features differently and draws other noise, like the paper's held-out labelers.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from typing import Sequence

from instructgpt.tasks.metrics import normalize_answer, score

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_WORDS = re.compile(r"^Words: (.+)$", re.MULTILINE)
CONTAINED = 0.75  # correctness credit of a response that holds the right answer among other words
# A judge's noise is set once, on this many sampled responses of the baseline to each judged prompt
# (as the comparisons stage sets a labeler's on the SFT model's samples), never on the pairs it
# judges: set on those, a model far better than the baseline would meet a noisier judge, and a
# model's win rate would move with whichever other models are judged beside it.
CALIBRATION_SAMPLES = 4


@dataclass(frozen=True)
class Profile:
    """Feature weights of one labeler pool and the seed of its noise."""

    name: str
    correct: float  # weight of the task metric's score, in [0, 1]
    form: float     # weight of following the instruction's form, in [0, 1]
    chatter: float  # penalty weight of words beyond the answer's, in [0, 1]
    length: float   # penalty weight of the relative length difference to the reference, in [0, 1]
    seed: int


PROFILES = {
    "train": Profile("train", correct=1.0, form=0.4, chatter=0.3, length=0.1, seed=1),
    "heldout": Profile("heldout", correct=1.0, form=0.3, chatter=0.4, length=0.2, seed=2),
}


@dataclass(frozen=True)
class Query:
    """What a labeler sees besides the responses: the instruction and the task's answer key."""

    prompt: str
    references: tuple[str, ...]
    metric: str
    kind: str
    labels: tuple[str, ...] | None = None


def features(query: Query, response: str) -> dict[str, float]:
    """The four features of one response, each in [0, 1]."""
    text = response.strip()
    if not text:
        return {"correct": 0.0, "form": 0.0, "chatter": 1.0, "length": 1.0}
    reference = min(query.references, key=len)
    ref_words, words = len(reference.split()), len(text.split())
    return {"correct": _correct(query, text),
            "form": _form(query, text, ref_words),
            "chatter": min(1.0, max(0, words - ref_words) / (ref_words + 2)),
            "length": min(1.0, abs(len(text) - len(reference)) / max(len(reference), 1))}


def _correct(query: Query, text: str) -> float:
    """The task metric's score; a right answer buried in other words still earns CONTAINED."""
    exact = score(query.metric, text, query.references)
    said = f" {normalize_answer(text)} "
    if any(normalize_answer(ref) and f" {normalize_answer(ref)} " in said for ref in query.references):
        return max(exact, CONTAINED)
    return exact


def _form(query: Query, text: str, ref_words: int) -> float:
    """1 when the response has the form the instruction asks for, partial credit when it holds it."""
    if query.labels:
        labels = {normalize_answer(label) for label in query.labels}
        if normalize_answer(text) in labels:
            return 1.0
        return 0.5 if any(label in normalize_answer(text).split() for label in labels) else 0.0
    if query.kind == "arithmetic":
        bare = text.replace(",", "")
        return 1.0 if _NUMBER.match(bare) else (0.5 if re.search(r"\d", bare) else 0.0)
    given = _WORDS.search(query.prompt)
    if given:  # one sentence that uses every given word
        wanted = [w.strip().lower() for w in given.group(1).split(",") if w.strip()]
        used = sum(w in text.lower() for w in wanted) / max(len(wanted), 1)
        one_sentence = len(re.findall(r"[.!?](?:\s|$)", text)) == 1 and text[-1] in ".!?"
        return used * (1.0 if one_sentence else 0.5)
    extra = max(0, len(text.split()) - ref_words - 1)
    return max(0.0, 1.0 - extra / (ref_words + 1))


def quality(query: Query, response: str, profile: Profile) -> float:
    """The noiseless utility of a response under a profile's weights."""
    f = features(query, response)
    return (profile.correct * f["correct"] + profile.form * f["form"] - profile.chatter * f["chatter"]
            - profile.length * f["length"])


@dataclass(frozen=True)
class Labeler:
    """Ranks responses by quality + noise · N(0, 1); the noise is a deterministic function of
    (profile seed, prompt, response), so the same response always gets the same judgement."""

    profile: Profile
    noise: float = 0.0

    def utilities(self, query: Query, responses: Sequence[str]) -> list[float]:
        return [quality(query, r, self.profile) + self.noise * _gauss(self.profile.seed, query.prompt, r)
                for r in responses]

    def rank(self, query: Query, responses: Sequence[str]) -> list[int]:
        """Indices of `responses` from best to worst (ties keep their order)."""
        u = self.utilities(query, responses)
        return sorted(range(len(responses)), key=lambda i: -u[i])

    def prefer(self, query: Query, a: str, b: str) -> float:
        """1 if a is preferred, 0 if b is, ½ for a tie (the same text always ties)."""
        if a.strip() == b.strip():
            return 0.5
        ua, ub = self.utilities(query, [a, b])
        return 0.5 if ua == ub else float(ua > ub)

    def calibrate(self, groups: Sequence[tuple[Query, Sequence[str]]], agreement: float) -> "Labeler":
        """This labeler with the noise whose pairwise agreement with the oracle over `groups` is
        closest to `agreement` (1.0 = no noise). Pairs the oracle ties are not counted."""
        if agreement >= 1.0:
            return replace(self, noise=0.0)
        pairs = []  # (oracle says i > j, this labeler's quality gap, noise gap) of every untied pair
        for query, responses in groups:
            truth = ORACLE.utilities(query, responses)
            mine = [quality(query, r, self.profile) for r in responses]
            z = [_gauss(self.profile.seed, query.prompt, r) for r in responses]
            pairs += [(truth[i] > truth[j], mine[i] - mine[j], z[i] - z[j])
                      for i in range(len(responses)) for j in range(i + 1, len(responses)) if truth[i] != truth[j]]
        if not pairs:
            return self
        low, high = 1e-4, 1e3
        for _ in range(50):  # bisection on log(noise): agreement falls as the noise grows
            mid = math.sqrt(low * high)
            rate = sum(better == (gap + mid * dz > 0) for better, gap, dz in pairs) / len(pairs)
            low, high = (mid, high) if rate > agreement else (low, mid)
        return replace(self, noise=math.sqrt(low * high))


ORACLE = Labeler(PROFILES["train"], noise=0.0)


def agreement_with_oracle(labeler: Labeler, groups: Sequence[tuple[Query, Sequence[str]]],
                          oracle: Labeler = ORACLE) -> float:
    """Fraction of response pairs that `labeler` orders as the oracle does (oracle ties skipped)."""
    agree = total = 0
    for query, responses in groups:
        truth, judged = oracle.utilities(query, responses), labeler.utilities(query, responses)
        for i in range(len(responses)):
            for j in range(i + 1, len(responses)):
                if truth[i] != truth[j]:
                    total += 1
                    agree += (truth[i] > truth[j]) == (judged[i] > judged[j])
    return agree / total if total else float("nan")


def _gauss(seed: int, prompt: str, response: str) -> float:
    return random.Random(f"{seed}\x00{prompt}\x00{response.strip()}").gauss(0.0, 1.0)
