"""Classification clusters: sentiment, topic, and categorize (animal class, food kind, parity)."""
from __future__ import annotations

import random

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import (ANIMAL_CLASSES, ANIMALS, DAYS, FOOD_CATEGORIES, FOODS,
                                     NAMES, NEGATIVE_WORDS, POSITIVE_WORDS, PRODUCTS, STREETS,
                                     TOPICS, article)

SENTIMENTS = ("positive", "negative")
THINGS = ("movie", "hotel", "concert", "dinner", "trip", "game", "book", "museum", "class",
          "party", "show", "cafe")
PLACES = ("river", "school", "barn", "park", "lake", "road", "garden", "bridge", "zoo")


def _polar_words(rng: random.Random, k: int) -> tuple[str, list[str]]:
    label = rng.choice(SENTIMENTS)
    lexicon = POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS
    return label, rng.sample(lexicon, k)


def _review_sentiment(rng: random.Random) -> Example:
    label, (w1, w2) = _polar_words(rng, 2)
    product, day, street = rng.choice(PRODUCTS).name, rng.choice(DAYS), rng.choice(STREETS)
    text = rng.choice((
        f"I bought the {product} last {day}. It is {w1} and {w2}.",
        f"Overall the {product} was {w1}, and the service felt {w2}.",
        f"The {product} from the {street} Street store? {w1.capitalize()}. Simply {w2}.",
        f"Review of the {product}: {w1} and {w2}.",
    ))
    return Example(input=text, output=label)


def _statement_sentiment(rng: random.Random) -> Example:
    label, (word,) = _polar_words(rng, 1)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    text = rng.choice((
        f"{name} thought the {thing} was {word}.",
        f"According to {name}, the {thing} felt {word}.",
        f"{name} said: what {article(word)} {word} {thing}!",
        f"The {thing} last night was {word}, {name} told us.",
    ))
    return Example(input=text, output=label)


def _topic_keywords(rng: random.Random) -> tuple[str, str, str]:
    topic = rng.choice(tuple(TOPICS))
    k1, k2 = rng.sample(TOPICS[topic], 2)
    return topic, k1, k2


def _topic_classification(rng: random.Random) -> Example:
    topic, k1, k2 = _topic_keywords(rng)
    name = rng.choice(NAMES)
    text = rng.choice((
        f"Everyone at the office was talking about the {k1} and the {k2}.",
        f"{name} wrote a short post about the {k1} and the {k2}.",
        f"Today's story covers the {k1}, the {k2} and more.",
        f"{name} could not stop thinking about the {k1} after hearing about the {k2}.",
    ))
    return Example(input=text, output=topic)


def _headline_topic(rng: random.Random) -> Example:
    topic, k1, k2 = _topic_keywords(rng)
    name = rng.choice(NAMES)
    text = rng.choice((
        f"{k1.capitalize()} and {k2}: what {name} learned this week",
        f"{name} on the {k1}, the {k2} and what comes next",
        f"Why the {k1} matters more than the {k2}",
        f"Five things {name} knows about the {k1} and the {k2}",
    ))
    return Example(input=text, output=topic)


def _animal_class(rng: random.Random) -> Example:
    animal, name, place = rng.choice(ANIMALS), rng.choice(NAMES), rng.choice(PLACES)
    a = article(animal.name)
    text = rng.choice((
        f"{name} saw {a} {animal.name} near the {place}.",
        f"Near the {place}, {name} took a photo of {a} {animal.name}.",
        f"{name} drew {a} {animal.name} in a notebook.",
    ))
    return Example(input=text, output=animal.cls)


def _food_category(rng: random.Random) -> Example:
    food, name, day = rng.choice(FOODS), rng.choice(NAMES), rng.choice(DAYS)
    text = rng.choice((
        f"{name} put some {food.plural} in the basket.",
        f"On {day}, {name} bought some {food.plural} at the market.",
        f"{name}'s recipe needs some {food.plural}.",
    ))
    return Example(input=text, output=food.category)


def _even_odd(rng: random.Random) -> Example:
    n = rng.randint(0, 9999)
    text = rng.choice((str(n), f"The number is {n}.", f"Number: {n}"))
    return Example(input=text, output="even" if n % 2 == 0 else "odd")


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="review_sentiment", kind="classification", cluster="sentiment", metric="accuracy",
        instructions=(
            "Is the following product review positive or negative?",
            "Classify the sentiment of this review as positive or negative.\n\n{input}",
            "Review: {input}\nDid the customer like it? Answer positive or negative.",
        ),
        generate=_review_sentiment, labels=SENTIMENTS),
    BuiltinTask(
        name="statement_sentiment", kind="classification", cluster="sentiment",
        metric="accuracy",
        instructions=(
            "Does this sentence express a positive or a negative feeling?",
            "{input}\n\nIs the speaker's opinion positive or negative?",
            "Label the sentiment (positive or negative) of the sentence below.",
        ),
        generate=_statement_sentiment, labels=SENTIMENTS),
    BuiltinTask(
        name="topic_classification", kind="classification", cluster="topic",
        metric="accuracy",
        instructions=(
            "Which topic is this sentence about: sports, weather, food, technology, music or "
            "health?",
            "Sentence: {input}\nTopic (sports, weather, food, technology, music or health):",
            "Classify the topic of the text below.",
        ),
        generate=_topic_classification, labels=tuple(TOPICS)),
    BuiltinTask(
        name="headline_topic", kind="classification", cluster="topic", metric="accuracy",
        instructions=(
            "What is this headline about? Choose sports, weather, food, technology, music or "
            "health.",
            "Headline: {input}\nWhich section of the newspaper does it belong to?",
            "Give the topic of this headline in one word.",
        ),
        generate=_headline_topic, labels=tuple(TOPICS)),
    BuiltinTask(
        name="animal_class", kind="classification", cluster="categorize", metric="accuracy",
        instructions=(
            "What class of animal is mentioned: mammal, bird, reptile, amphibian, fish, insect "
            "or arachnid?",
            "{input}\n\nIs the animal in that sentence a mammal, bird, reptile, amphibian, fish, "
            "insect or arachnid?",
            "Name the animal class of the animal in the sentence.",
        ),
        generate=_animal_class, labels=ANIMAL_CLASSES),
    BuiltinTask(
        name="food_category", kind="classification", cluster="categorize", metric="accuracy",
        instructions=(
            "Is the food in this sentence a fruit, a vegetable or dairy?",
            "{input}\n\nWhich kind of food was mentioned: fruit, vegetable or dairy?",
            "Sort the food mentioned below into fruit, vegetable or dairy.",
        ),
        generate=_food_category, labels=FOOD_CATEGORIES),
    BuiltinTask(
        name="even_odd", kind="classification", cluster="categorize", metric="accuracy",
        instructions=(
            "Is this number even or odd?",
            "{input}\n\nAnswer even or odd.",
            "Tell whether the number below is even or odd.",
        ),
        generate=_even_odd, labels=("even", "odd")),
)
