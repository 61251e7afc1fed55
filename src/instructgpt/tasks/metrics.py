"""Per-task metrics, each `(prediction, references) -> score in [0, 1]`, best over references.

exact_match / accuracy and f1 follow the SQuAD definitions (normalised answers, token F1);
exact_match_cased is exact_match without the lower-casing, for tasks whose answer is the case;
rouge_l is `rouge-score`'s ROUGE-L F-measure (the Super-NaturalInstructions metric); numeric
compares the first number in the prediction with the reference's.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Callable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str, lower: bool = True) -> str:
    """SQuAD: lower case (unless `lower` is False), no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in (text.lower() if lower else text) if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Sequence[str], lower: bool = True) -> float:
    pred = normalize_answer(prediction, lower)
    return float(any(pred == normalize_answer(ref, lower) for ref in references))


def exact_match_cased(prediction: str, references: Sequence[str]) -> float:
    """exact_match that keeps case: 'garden' does not match 'GARDEN'."""
    return exact_match(prediction, references, lower=False)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    return max(_f1(normalize_answer(prediction).split(), normalize_answer(ref).split()) for ref in references)


def _f1(pred: list[str], ref: list[str]) -> float:
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    scorer = _rouge()
    return max(scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references)


def numeric(prediction: str, references: Sequence[str]) -> float:
    found = _NUMBER.search(prediction.replace(",", ""))
    if not found:
        return 0.0
    value = float(found.group())
    for ref in references:
        ref_num = _NUMBER.search(ref.replace(",", ""))
        if ref_num and abs(float(ref_num.group()) - value) < 1e-6:
            return 1.0
    return 0.0


METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "exact_match": exact_match, "exact_match_cased": exact_match_cased, "accuracy": exact_match,
    "f1": token_f1, "rouge_l": rouge_l, "numeric": numeric,
}


def score(metric: str, prediction: str, references: Sequence[str]) -> float:
    return METRICS[metric](prediction.strip(), references)
