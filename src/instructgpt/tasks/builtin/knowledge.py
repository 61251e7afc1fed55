"""The world_facts cluster: look a fact up in the world's tables (capitals, languages, legs)."""
from __future__ import annotations

import random
from typing import Callable

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import ANIMALS, COUNTRIES, MONTHS, NAMES, Country, article


def _country_sentence(rng: random.Random, country: Country) -> str:
    name, month = rng.choice(NAMES), rng.choice(MONTHS)
    return rng.choice((
        f"{name} is travelling to {country.name} in {month}.",
        f"{name} grew up in {country.name}.",
        f"{name} read a book about {country.name}.",
        f"{name} has a pen friend who lives in {country.name}.",
        f"Last {month}, {name} spent two weeks in {country.name}.",
    ))


def _country_fact(fact: Callable[[Country], str]):
    """A generator asking for `fact(country)` about the country a short sentence mentions."""
    def generate(rng: random.Random) -> Example:
        country = rng.choice(COUNTRIES)
        return Example(input=_country_sentence(rng, country), output=fact(country))
    return generate


def _animal_legs(rng: random.Random) -> Example:
    animal, name = rng.choice(ANIMALS), rng.choice(NAMES)
    a = article(animal.name)
    text = rng.choice((
        f"{name} saw {a} {animal.name} on a walk.",
        f"{name} is reading about the {animal.name}.",
        f"{name}'s favourite animal is the {animal.name}.",
        f"{name} drew {a} {animal.name} for a school project.",
        f"At the zoo, {name} watched {a} {animal.name}.",
    ))
    return Example(input=text, output=str(animal.legs))


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="capital_of_country", kind="qa", cluster="world_facts", metric="exact_match",
        instructions=(
            "What is the capital of the country mentioned in the sentence?",
            "{input}\n\nName the capital city of that country.",
            "Read the sentence and give the capital of the country in it.",
        ),
        generate=_country_fact(lambda c: c.capital)),
    BuiltinTask(
        name="country_language", kind="qa", cluster="world_facts", metric="exact_match",
        instructions=(
            "Which language do people mainly speak in the country mentioned?",
            "{input}\n\nWhat language is spoken in that country?",
            "Name the main language of the country in this sentence.",
        ),
        generate=_country_fact(lambda c: c.language)),
    BuiltinTask(
        name="country_currency", kind="qa", cluster="world_facts", metric="exact_match",
        instructions=(
            "What currency do people pay with in the country mentioned?",
            "{input}\n\nWhich currency is used in that country?",
            "Name the currency of the country in this sentence.",
        ),
        generate=_country_fact(lambda c: c.currency)),
    BuiltinTask(
        name="country_continent", kind="qa", cluster="world_facts", metric="exact_match",
        instructions=(
            "On which continent is the country mentioned?",
            "{input}\n\nWhich continent is that country in?",
            "Name the continent of the country in this sentence.",
        ),
        generate=_country_fact(lambda c: c.continent)),
    BuiltinTask(
        name="animal_legs", kind="qa", cluster="world_facts", metric="exact_match",
        instructions=(
            "How many legs does the animal in the sentence have? Answer with a number.",
            "{input}\n\nHow many legs does that animal have?",
            "Give the number of legs of the animal mentioned.",
        ),
        generate=_animal_legs),
)
