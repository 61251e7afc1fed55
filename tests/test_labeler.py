"""The labeler: what it prefers without noise, and noise tuned to a given agreement rate."""
from __future__ import annotations

import random

import pytest

from instructgpt.tasks.labeler import ORACLE, PROFILES, Labeler, Query, agreement_with_oracle, features

SENTIMENT = Query("Is this review positive or negative?\n\nGreat soup.", ("positive",), "accuracy",
                  "classification", ("positive", "negative"))
SUM = Query("What is 12 plus 30?", ("42",), "numeric", "arithmetic")
WORDS = Query("Write one sentence that uses every word.\n\nWords: park, Ana, found, apple", 
              ("Ana found an apple near the park.",), "rouge_l", "generation")


def test_the_noiseless_oracle_prefers_correct_well_formed_terse_answers():
    assert ORACLE.rank(SENTIMENT, ["negative", "positive", "it is positive I think", ""]) == [1, 2, 0, 3]
    assert ORACLE.rank(SUM, ["41", "The answer is 42 of course", "42"])[0] == 2
    assert ORACLE.prefer(SUM, "42", "The answer is 42 of course") == 1.0
    assert ORACLE.prefer(SUM, "42", " 42 ") == 0.5
    order = ORACLE.rank(WORDS, ["Ana found an apple near the park.", "Ana found an apple",
                                "Ana found an apple. It was in the park."])
    assert order[0] == 0
    assert features(WORDS, "Ana found an apple")["form"] == pytest.approx(0.75 * 0.5)


def test_noise_is_deterministic_and_tuned_to_the_agreement_rate():
    rng = random.Random(0)
    groups = []
    for n in range(150):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        query = Query(f"What is {a} plus {b}?", (str(a + b),), "numeric", "arithmetic")
        responses = [str(a + b), str(a + b + rng.randint(1, 9)), f"It is {a + b}", f"{a + b} is the sum", ""]
        groups.append((query, responses))
    for profile in ("train", "heldout"):
        labeler = Labeler(PROFILES[profile]).calibrate(groups, 0.75)
        assert agreement_with_oracle(labeler, groups) == pytest.approx(0.75, abs=0.01)
        assert labeler.rank(*groups[0]) == labeler.rank(*groups[0])
    heldout = Labeler(PROFILES["heldout"]).calibrate(groups, 0.75)
    train = Labeler(PROFILES["train"]).calibrate(groups, 0.75)
    assert heldout.noise != train.noise  # other weights, other noise
    assert Labeler(PROFILES["train"]).calibrate(groups, 1.0).noise == 0.0
    assert agreement_with_oracle(ORACLE, groups) == 1.0
