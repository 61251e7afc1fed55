"""Task metrics on hand-worked values."""
from __future__ import annotations

import pytest

from instructgpt.tasks.metrics import normalize_answer, score


def test_normalize_answer_is_squad_normalisation():
    assert normalize_answer("  The Cat, sat!  ") == "cat sat"


@pytest.mark.parametrize("metric, prediction, references, expected", [
    ("exact_match", "Paris.", ["paris"], 1.0),
    ("exact_match", "Paris, France", ["Paris"], 0.0),
    ("exact_match", "g-a-r-d-e-n", ["G-A-R-D-E-N"], 1.0),         # SQuAD lower-cases
    ("exact_match_cased", "g-a-r-d-e-n", ["G-A-R-D-E-N"], 0.0),   # the case is the answer
    ("exact_match_cased", " G-A-R-D-E-N.", ["GARDEN"], 1.0),       # punctuation still goes
    ("accuracy", "positive", ["negative", "positive"], 1.0),       # best over references
    # token F1: pred {march, 10, 2024} vs ref {march, 10}: P = 2/3, R = 1 -> 0.8
    ("f1", "March 10 2024", ["March 10"], 0.8),
    ("f1", "nothing", ["March 10"], 0.0),
    ("numeric", "The answer is 42.", ["42"], 1.0),
    ("numeric", "41", ["42"], 0.0),
    ("numeric", "1,200 dollars", ["1200"], 1.0),
    ("numeric", "no number", ["3"], 0.0),
    # ROUGE-L: LCS("the cat sat", "the cat sat down") = 3; P = 1, R = 3/4 -> F = 6/7
    ("rouge_l", "the cat sat", ["the cat sat down"], 6 / 7),
])
def test_metrics_by_hand(metric, prediction, references, expected):
    assert score(metric, prediction, references) == pytest.approx(expected)
