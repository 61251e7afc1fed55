"""The built-in task suite and the pretraining corpus: shape, determinism, and correct answers."""
import re
from functools import lru_cache

import pytest

from instructgpt.tasks.builtin import BUILTIN_TASKS, DEFAULT_HELD_OUT_CLUSTERS
from instructgpt.tasks.corpus import iter_corpus, write_corpus
from instructgpt.tasks.task import Task
from instructgpt.tasks.world import ANIMALS, COUNTRIES

BY_NAME = {t.name: t for t in BUILTIN_TASKS}
CLUSTERS = {t.cluster for t in BUILTIN_TASKS}
N = 380  # n_train + n_val + n_test of configs/tasks/default.yaml


@lru_cache(maxsize=None)
def built(name: str, n: int = N, seed: int = 0) -> Task:
    return BY_NAME[name].build(n, seed)


def examples(name: str):
    return built(name).examples


def ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def test_suite_shape():
    assert len(BUILTIN_TASKS) >= 24
    assert len(BY_NAME) == len(BUILTIN_TASKS), "task names must be unique"
    assert len(CLUSTERS) >= 9
    for t in BUILTIN_TASKS:
        assert re.fullmatch(r"[a-z0-9_]+", t.name)
        assert len(set(t.instructions)) >= 3, t.name
        assert (t.kind == "classification") == (t.labels is not None), t.name
    kinds = {t.kind for t in BUILTIN_TASKS}
    assert kinds == {"classification", "generation", "qa", "extraction", "arithmetic", "rewrite"}


def test_held_out_clusters_exist_and_leave_enough_held_in():
    assert len(DEFAULT_HELD_OUT_CLUSTERS) >= 2
    assert set(DEFAULT_HELD_OUT_CLUSTERS) <= CLUSTERS
    assert len(CLUSTERS - set(DEFAULT_HELD_OUT_CLUSTERS)) >= 6


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_each_task_builds_distinct_short_examples(name):
    assert len({ex.input for ex in built(name, 200).examples}) >= 200
    task = built(name)
    assert len({ex.input for ex in task.examples}) == N, "splits would share examples"
    for ex in task.examples:
        assert ex.output.strip() and len(ex.output.split()) <= 15, ex
        assert len(ex.input.split()) <= 60, ex
        if task.labels:
            assert ex.output in task.labels, ex
        if task.metric == "numeric":
            float(ex.output)
    ex = task.examples[0]
    for i in range(len(task.instructions)):
        assert ex.input in task.render(ex, i) and "{input}" not in task.render(ex, i)


def test_build_is_deterministic_in_seed():
    for t in BUILTIN_TASKS:
        assert t.build(20, seed=1) == t.build(20, seed=1), t.name
        assert t.build(20, seed=1).examples != t.build(20, seed=2).examples, t.name


def test_arithmetic_answers():
    for ex in examples("addition"):
        assert int(ex.output) == sum(ints(ex.input)), ex
    for ex in examples("subtraction"):
        a, b = ints(ex.input)
        if ex.input.startswith("Subtract"):  # "Subtract b from a."
            a, b = b, a
        assert int(ex.output) == a - b >= 0, ex
    for ex in examples("multiplication"):
        a, b = ints(ex.input)
        assert int(ex.output) == a * b, ex
    for ex in examples("word_problem_add") + examples("shop_total"):
        assert int(ex.output) == sum(ints(ex.input)), ex
    for ex in examples("word_problem_sub"):
        a, b = ints(ex.input)
        assert int(ex.output) == a - b, ex


def letters(spelled: str) -> list[str]:
    """'h-o-u-s-e' -> ['h', 'o', 'u', 's', 'e'] (letter tasks spell their words out)."""
    assert re.fullmatch(r"[a-z](-[a-z])*", spelled), spelled
    return spelled.split("-")


def test_string_answers():
    for ex in examples("reverse_word"):
        assert letters(ex.output) == letters(ex.input)[::-1], ex
    for ex in examples("remove_vowels"):
        assert letters(ex.output) == [ch for ch in letters(ex.input) if ch not in "aeiou"], ex
    for ex in examples("sort_letters"):
        assert letters(ex.output) == sorted(letters(ex.input)), ex
    for ex in examples("sort_words"):
        assert ex.output.split() == sorted(ex.input.split()) and "-" in ex.input, ex
        words = [w.replace("-", "") for w in ex.input.split()]
        assert " ".join(sorted(words)) == ex.output.replace("-", ""), ex
    for ex in examples("uppercase_words"):
        assert ex.output.isupper() and ex.output.lower() == ex.input and "-" in ex.input, ex
    for ex in examples("spell_word"):
        assert letters(ex.output) == list(ex.input), ex
    for ex in examples("count_letters"):
        assert int(ex.output) == len(letters(ex.input)), ex
    for ex in examples("count_words"):
        assert int(ex.output) == len(ex.input.split()), ex
    for ex in examples("count_letter_occurrences"):
        if m := re.fullmatch(r"Word: ([a-z-]+)\. Letter: (\w)", ex.input):
            word, letter = m.groups()
        else:
            letter, word = re.search(r"letter (\w) appear in ([a-z-]+)\?", ex.input).groups()
        assert int(ex.output) == letters(word).count(letter), ex


def test_classification_is_right():
    classes = {a.name: a.cls for a in ANIMALS}
    for ex in examples("animal_class"):
        (animal,) = [w for w in re.findall(r"[a-z]+", ex.input) if w in classes]
        assert ex.output == classes[animal], ex
    for ex in examples("even_odd"):
        (n,) = ints(ex.input)
        assert ex.output == ("even" if n % 2 == 0 else "odd"), ex


def test_extraction_and_service_answers_are_spans_of_the_input():
    for name in ("extract_price", "extract_date", "extract_name", "store_hours_qa",
                 "store_policy_qa", "product_price_qa"):
        for ex in examples(name):
            context = ex.input.split("\nCustomer:")[0]
            assert ex.output in context, (name, ex)
    for ex in examples("product_price_qa"):
        product = re.search(r"the (\w+)( cost)?\?$", ex.input).group(1)
        assert re.search(rf"{product}( costs)? {re.escape(ex.output)}", ex.input), ex


def test_constrained_generation_uses_every_word():
    for name in ("use_words_sentence", "describe_animal", "describe_country"):
        for ex in examples(name):
            words = ex.input.removeprefix("Words: ").split(", ")
            assert len(words) >= 3
            assert all(re.search(rf"\b{re.escape(w)}\b", ex.output) for w in words), ex


def test_world_fact_answers_match_the_tables():
    by_country = {c.name: c for c in COUNTRIES}
    for name, field in (("capital_of_country", "capital"), ("country_language", "language"),
                        ("country_currency", "currency"), ("country_continent", "continent")):
        for ex in examples(name):
            (country,) = [c for c in by_country if re.search(rf"\b{c}\b", ex.input)]
            assert ex.output == getattr(by_country[country], field), ex
    assert (by_country["France"].capital, by_country["Japan"].currency) == ("Paris", "yen")
    legs = {a.name: a.legs for a in ANIMALS}
    assert (legs["spider"], legs["bee"], legs["owl"], legs["cow"]) == (8, 6, 2, 4)
    for ex in examples("animal_legs"):
        (animal,) = [w for w in re.findall(r"[a-z]+", ex.input) if w in legs]
        assert ex.output == str(legs[animal]), ex


def test_corpus_is_deterministic_prose_about_the_world():
    text = "\n\n".join(iter_corpus(seed=0, n_bytes=100_000))
    assert text == "\n\n".join(iter_corpus(seed=0, n_bytes=100_000))
    assert text != "\n\n".join(iter_corpus(seed=1, n_bytes=100_000))
    assert "{" not in text and "}" not in text
    assert "Question:" not in text and "Answer:" not in text
    sentences = re.split(r"(?<=\.) ", text.replace("\n\n", " "))
    capitals = {(c.capital, c.name) for c in COUNTRIES}
    said = [m.groups() for s in sentences
            if (m := re.fullmatch(r"(.+) is the capital of (.+)\.", s))]
    assert len(said) > 10 and all(pair in capitals for pair in said)
    reversals = [m.groups() for s in sentences
                 if (m := re.fullmatch(r"The word (\w+) spelled backwards is ([a-z-]+)\.", s))]
    assert reversals and all(letters(rev) == list(word[::-1]) for word, rev in reversals)
    sums = [ints(s) for s in sentences if re.fullmatch(r"\d+ plus \d+ is \d+\.", s)]
    assert sums and all(a + b == c for a, b, c in sums)
    read_back = [m.groups() for s in sentences
                 if (m := re.fullmatch(r"\w+ wrote down the code (\S+) and read it back: (\S+)\.", s))]
    assert read_back and all(code == said for code, said in read_back)
    capitals_spelled = [m.groups() for s in sentences
                        if (m := re.fullmatch(r"In capital letters, ([a-z-]+) is written ([A-Z-]+)\.", s))]
    assert capitals_spelled and all(low.upper() == up for low, up in capitals_spelled)
    copied = re.findall(r"The list said ([a-z -]+)\. \w+ copied it: ([a-z -]+)\.", text)
    assert copied and all(first == second for first, second in copied)
    shouted = [m.groups() for s in sentences
               if (m := re.fullmatch(r"\w+ whispered ([a-z -]+), and \w+ shouted ([A-Z -]+)\.", s))]
    assert shouted and all(low.upper() == up for low, up in shouted)
    assert all(len(p.split(". ")) >= 2 for p in text.split("\n\n")), "paragraphs, not lines"


def test_write_corpus_writes_about_the_asked_size(tmp_path):
    path = tmp_path / "corpus.txt"
    written = write_corpus(path, seed=3, n_bytes=100_000)
    data = path.read_bytes()
    assert written == len(data) and abs(written - 100_000) <= 10_000
    assert data.decode("utf-8").split("\n\n")[0] == next(iter_corpus(3, 100_000))
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"], "temp file left behind"
