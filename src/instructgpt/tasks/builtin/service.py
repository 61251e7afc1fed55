"""Shop clusters: extraction (a price, date or name from a sentence) and customer_service QA."""
from __future__ import annotations

import random

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import DAYS, MONTHS, NAMES, PRODUCTS, STREETS, article, dollars

RETURN_DAYS = (7, 14, 21, 28, 30, 60, 90)
PRODUCT_NAMES = frozenset(p.name for p in PRODUCTS)


def _price(rng: random.Random) -> str:
    return dollars(rng.randint(2, 80) * 100 + rng.choice((0, 25, 50, 95, 99)))


def _notice(rng: random.Random) -> tuple[str, dict[str, str], dict[str, str]]:
    """A shop's sentences by fact, its header, and the fact answers (each a span of a sentence)."""
    opens, closes = f"{rng.randint(7, 10)} am", f"{rng.randint(5, 9)} pm"
    closed, returns = rng.choice(DAYS), f"{rng.choice(RETURN_DAYS)} days"
    shipping = f"{rng.randint(2, 7)} business days"
    p1, p2 = (p.name for p in rng.sample(PRODUCTS, 2))
    x1, x2 = _price(rng), _price(rng)
    street = rng.choice(STREETS)
    sentences = {
        "hours": rng.choice((f"We are open from {opens} to {closes}.",
                             f"Opening hours are {opens} to {closes}.",
                             f"The store opens at {opens} and closes at {closes}.")),
        "closed": rng.choice((f"We are closed every {closed}.",
                              f"The store is closed on {closed}.")),
        "returns": rng.choice((f"Items can be returned within {returns}.",
                               f"You may return any item within {returns} with a receipt.")),
        "shipping": rng.choice((f"Standard shipping takes {shipping}.",
                                f"Online orders arrive within {shipping}.")),
        "prices": rng.choice((f"The {p1} costs {x1} and the {p2} costs {x2}.",
                              f"This week: {p1} {x1}, {p2} {x2}.")),
    }
    header = rng.choice((f"Welcome to the {street} Street store.",
                         f"Notice from the {street} Street shop."))
    answers = {"opens": opens, "closes": closes, "closed": closed, "returns": returns,
               "shipping": shipping, p1: x1, p2: x2}
    return header, sentences, answers


def _service_example(rng: random.Random, key: str, question: str, answer: str,
                     sentences: dict[str, str], header: str) -> Example:
    """The needed sentence plus one distractor, shuffled, then the customer's question."""
    distractor = rng.choice([k for k in sentences if k != key])
    picked = [sentences[key], sentences[distractor]]
    rng.shuffle(picked)
    return Example(input=f"{header} {' '.join(picked)}\nCustomer: {question}", output=answer)


def _store_hours_qa(rng: random.Random) -> Example:
    header, sentences, answers = _notice(rng)
    key, fact, question = rng.choice((
        ("hours", "opens", "What time does the store open?"),
        ("hours", "closes", "When does the store close?"),
        ("closed", "closed", "On which day is the store closed?"),
    ))
    return _service_example(rng, key, question, answers[fact], sentences, header)


def _store_policy_qa(rng: random.Random) -> Example:
    header, sentences, answers = _notice(rng)
    key, question = rng.choice((
        ("returns", "How long do I have to return an item?"),
        ("returns", "How many days do I have to bring something back?"),
        ("shipping", "How long does standard shipping take?"),
        ("shipping", "How long until my online order arrives?"),
    ))
    return _service_example(rng, key, question, answers[key], sentences, header)


def _product_price_qa(rng: random.Random) -> Example:
    header, sentences, answers = _notice(rng)
    product = rng.choice([k for k in answers if k in PRODUCT_NAMES])
    question = rng.choice((f"How much does the {product} cost?", f"What is the price of the "
                           f"{product}?"))
    return _service_example(rng, "prices", question, answers[product], sentences, header)


def _extract_price(rng: random.Random) -> Example:
    name, product, price = rng.choice(NAMES), rng.choice(PRODUCTS).name, _price(rng)
    day, street = rng.choice(DAYS), rng.choice(STREETS)
    text = rng.choice((
        f"{name} paid {price} for {article(product)} {product} at the {street} Street store.",
        f"The {product} is on sale for {price} until {day}.",
        f"On {day}, {name} found {article(product)} {product} priced at {price}.",
    ))
    return Example(input=text, output=price)


def _extract_date(rng: random.Random) -> Example:
    name, product, street = rng.choice(NAMES), rng.choice(PRODUCTS).name, rng.choice(STREETS)
    date = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"
    text = rng.choice((
        f"{name}'s dentist appointment is on {date}.",
        f"The {product} ordered by {name} will arrive on {date}.",
        f"{name} was born on {date}.",
        f"The {street} Street store reopens on {date}.",
    ))
    return Example(input=text, output=date)


def _extract_name(rng: random.Random) -> Example:
    name, product = rng.choice(NAMES), rng.choice(PRODUCTS).name
    day, street = rng.choice(DAYS), rng.choice(STREETS)
    text = rng.choice((
        f"Yesterday {name} bought {article(product)} {product} at the {street} Street store.",
        f"The {product} was a gift from {name}.",
        f"On {day}, the manager thanked {name} for the kind review.",
        f"A customer called {name} asked about the {product} on {day}.",
    ))
    return Example(input=text, output=name)


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="extract_price", kind="extraction", cluster="extraction", metric="exact_match",
        instructions=(
            "What price is mentioned in the sentence?",
            "{input}\n\nCopy the price from the sentence above.",
            "Extract the amount of money from this text.",
        ),
        generate=_extract_price),
    BuiltinTask(
        name="extract_date", kind="extraction", cluster="extraction", metric="f1",
        instructions=(
            "Which date is mentioned in the sentence?",
            "{input}\n\nWrite down the date from the sentence above.",
            "Extract the date (month and day) from this text.",
        ),
        generate=_extract_date),
    BuiltinTask(
        name="extract_name", kind="extraction", cluster="extraction", metric="exact_match",
        instructions=(
            "Who is the person mentioned in the sentence?",
            "{input}\n\nWhat is the first name of the person above?",
            "Extract the person's name from this text.",
        ),
        generate=_extract_name),
    BuiltinTask(
        name="store_hours_qa", kind="qa", cluster="customer_service", metric="exact_match",
        instructions=(
            "You work at a shop. Answer the customer's question using the notice.",
            "{input}\n\nReply to the customer with the answer from the notice.",
            "Read the shop notice and answer the question briefly.",
        ),
        generate=_store_hours_qa),
    BuiltinTask(
        name="store_policy_qa", kind="qa", cluster="customer_service", metric="f1",
        instructions=(
            "You work at a shop. Answer the customer's question using the notice.",
            "{input}\n\nReply to the customer with the answer from the notice.",
            "Read the shop notice and answer the question briefly.",
        ),
        generate=_store_policy_qa),
    BuiltinTask(
        name="product_price_qa", kind="qa", cluster="customer_service", metric="exact_match",
        instructions=(
            "You work at a shop. Tell the customer the price from the notice.",
            "{input}\n\nAnswer with the price from the notice.",
            "Read the shop notice and answer the question briefly.",
        ),
        generate=_product_price_qa),
)
