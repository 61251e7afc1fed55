"""The constrained_generation cluster: write one sentence that uses every given word."""
from __future__ import annotations

import random

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import (ANIMALS, COUNTRIES, FOODS, NAMES, NUMBER_WORDS, PRODUCTS,
                                     article)

PLACES = ("market", "park", "station", "library", "office", "beach", "school", "bakery")
# (verb, sentence pattern): the verb is one of the words the sentence must use.
VERB_PATTERNS = (
    ("bought", "{name} bought {obj} at the {place}."),
    ("found", "{name} found {obj} near the {place}."),
    ("carried", "{name} carried {obj} to the {place}."),
    ("left", "{name} left {obj} at the {place}."),
    ("wanted", "At the {place}, {name} wanted {obj}."),
)


def _words_input(rng: random.Random, words: list[str]) -> str:
    """'Words: a, b, c' in a random order, so the model has to compose, not copy."""
    words = list(words)
    rng.shuffle(words)
    return "Words: " + ", ".join(words)


def _use_words_sentence(rng: random.Random) -> Example:
    name, place = rng.choice(NAMES), rng.choice(PLACES)
    verb, pattern = rng.choice(VERB_PATTERNS)
    if rng.random() < 0.5:
        thing = rng.choice(PRODUCTS).name
        obj = f"{article(thing)} {thing}"
    else:
        food = rng.choice(FOODS)
        thing, obj = food.plural, f"some {food.plural}"
    output = pattern.format(name=name, obj=obj, place=place)
    return Example(input=_words_input(rng, [name, verb, thing, place]), output=output)


def _describe_animal(rng: random.Random) -> Example:
    animal, name = rng.choice(ANIMALS), rng.choice(NAMES)
    a = f"{article(animal.name)} {animal.name}"
    facts = [("legs", f"{name} knows that {a} has "
              + (f"{NUMBER_WORDS[animal.legs]} legs." if animal.legs else "no legs.")),
             (animal.diet, f"{name} learned that {a} is {article(animal.diet)} {animal.diet}."),
             (animal.cls, f"{name} read that {a} is {article(animal.cls)} {animal.cls}.")]
    if animal.sound:
        facts.append((animal.sound, f"{name} says that {a} {animal.sound}."))
    word, output = rng.choice(facts)
    return Example(input=_words_input(rng, [name, animal.name, word]), output=output)


def _describe_country(rng: random.Random) -> Example:
    country, name = rng.choice(COUNTRIES), rng.choice(NAMES)
    word, output = rng.choice((
        (country.capital, f"{name} flew to {country.capital}, the capital of {country.name}."),
        (country.language, f"{name} spoke {country.language} while visiting {country.name}."),
        (country.currency, f"{name} paid with the {country.currency} in {country.name}."),
        (country.continent, f"{name} visited {country.name} on a trip to "
                            f"{country.continent}."),
    ))
    return Example(input=_words_input(rng, [name, country.name, word]), output=output)


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="use_words_sentence", kind="generation", cluster="constrained_generation",
        metric="rouge_l",
        instructions=(
            "Write one sentence that uses all of the given words.",
            "{input}\n\nMake a short sentence containing every word above.",
            "Use these words in a single sentence. {input}",
        ),
        generate=_use_words_sentence),
    BuiltinTask(
        name="describe_animal", kind="generation", cluster="constrained_generation",
        metric="rouge_l",
        instructions=(
            "Write a true sentence about the animal that uses all of the given words.",
            "{input}\n\nWrite one correct fact about the animal using these words.",
            "Make a sentence with these words that states a fact. {input}",
        ),
        generate=_describe_animal),
    BuiltinTask(
        name="describe_country", kind="generation", cluster="constrained_generation",
        metric="rouge_l",
        instructions=(
            "Write a true sentence about the country that uses all of the given words.",
            "{input}\n\nWrite one correct sentence using these words.",
            "Make a sentence with these words that states a fact. {input}",
        ),
        generate=_describe_country),
)
