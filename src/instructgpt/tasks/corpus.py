"""The pretraining corpus: plain prose paragraphs stating the world's facts and skills.

The built-in tasks ask about the same world, so a model pretrained here has seen the facts
(capitals, legs, shop hours) and the skills (reversing, counting, adding) in prose form.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable, Iterator

from instructgpt.tasks.builtin.strings import random_word, spelled
from instructgpt.tasks.world import (ANIMALS, COUNTABLES, COUNTRIES, DAYS, DIET_FOOD, FOODS,
                                     MONTHS, NAMES, NEGATIVE_WORDS, NUMBER_WORDS,
                                     POSITIVE_WORDS, PRODUCTS, SHOP, STREETS, TOPICS, article,
                                     dollars, word_pool)

COUNTRY = (
    "{capital} is the capital of {country}.",
    "The capital of {country} is {capital}.",
    "People in {country} speak {language} and pay with the {currency}.",
    "{country} is a country in {continent}.",
    "In {country}, shops take the {currency}.",
    "{name} visited {capital}, the capital city of {country}, last {month}.",
    "Most people in {country} speak {language}.",
    "The official currency of {country} is the {currency}.",
    "{name} grew up in {country}, so {name} speaks {language}.",
)
ANIMAL = (
    "{A_animal} has {legs_phrase}.",
    "The number of legs on {a_animal} is {legs}.",
    "{Plural} live in {habitat}.",
    "{A_animal} is {a_cls}.",
    "{A_animal} is {a_diet}, so it eats {diet_food}.",
    "{name} counted the legs of {a_animal} and got {legs}.",
    "{name} learned that {plural} live in {habitat}.",
)
ANIMAL_SOUND = ("{A_animal} {sound}.", "You can hear {a_animal} when it {sound}.")
FOOD = (
    "{Plural} {be} usually {colour}.",
    "{name} put the {plural} on the {category} shelf.",
    "In the kitchen, {plural} {be} counted as {category}.",
    "{name} bought some {plural} at the market on {day}.",
)
SHOP_FACTS = (
    "The {street} Street store opens at {opens} and closes at {closes}.",
    "On Saturdays it is open from {saturday}, and it is closed on {closed_day}s.",
    "Customers can return items within {return_days} days if they keep the receipt.",
    "Standard shipping takes {shipping}, and express shipping takes {express}.",
    "At the {street} Street store, the {product} costs {price}.",
    "You can call the store at {phone}.",
)
NOTICE = (
    "The {street} Street shop opens at {opens} and closes at {closes}.",
    "It is closed every {closed_day}.",
    "Items bought there can be returned within {return_days} days.",
    "Online orders arrive within {shipping}.",
    "This week the {product} costs {price}.",
    "A customer asked when the shop opens, and the clerk said {opens}.",
    "A customer asked when the shop closes, and the clerk said {closes}.",
    "A customer asked what the {product} costs, and the clerk said {price}.",
)
ARITHMETIC = (
    "{name} had {a} {items} and bought {b} more, so {name} had {total}.",
    "{name} had {a} {items} and gave {b} to {other}, leaving {diff}.",
    "{a} plus {b} is {total}.",
    "{x} plus {y} equals {x_plus_y}.",
    "{x} + {y} = {x_plus_y}.",
    "{c} x {d} = {prod}.",
    "{x} minus {z} leaves {x_minus_z}.",
    "{c} times {d} equals {prod}.",
    "If you take {b} away from {a}, you get {diff}.",
    "{A_product} costs {p} dollars and {a_product2} costs {q} dollars, so both together "
    "cost {pq} dollars.",
    "There were {a} {items} in a box and {b} more on the table, {total} in total.",
)
REVIEW = (
    "I bought the {product} last {day}, and it was {w1} and {w2}.",
    "{name} said the {product} from the {street} Street store was {w1}.",
    "The service was {w2}, and {recommend}",
    "Most readers would call this a {verdict} review.",
)
TOPIC = (
    "This story is about {topic}.",
    "Articles about {topic} often mention the {k1}, the {k2} and the {k3}.",
    "Words like {k1} and {k2} usually come up when people discuss {topic}.",
    "{name} wrote an article on {topic} that mentioned the {k1}.",
    "When the news is about the {k1} or the {k2}, the topic is {topic}.",
)
WORDPLAY = (
    "The word {word} spelled backwards is {rev}.",
    "The word {word} is spelled {spaced}.",
    "In capital letters, {spelled} is written {upper}.",
    "The word {word} is spelled {spelled}, which is {n} letters.",
    "Without its vowels, {spelled} becomes {novowel}.",
    "Sorted alphabetically, the letters {spelled} become {sorted}.",
    "Backwards, {spelled} reads {rev}.",
    "In {spelled}, the letter {letter} appears {count} {times}.",
    "The number {number} is {parity}.",
    "In alphabetical order, the words {words} become {sorted_words}.",
)
NOTES = (
    "{name} wrote down the code {code} and read it back: {code}.",
    "The ticket number is {number}. {name} checked it twice: {number}.",
    "{name}'s locker code is {code}; when {other} asked for it, {name} said {code}.",
    "The receipt from the {street} Street store says {price}, so {name} paid {price}.",
    "The password is {word}. Type {word} to log in.",
    "The label said {word}, and {other} could not read it, so {name} spelled it out: {word}.",
)
DICTATION = (
    "{name} read out the words {words}, and {other} wrote them down: {words}.",
    "The list said {words}. {name} copied it: {words}.",
    "{name} asked {other} to repeat {words}, and {other} said {words}.",
    "On the board: {words}. In {name}'s notebook: {words}.",
    "{name} wrote {words} in capitals: {upper}.",
    "{name} whispered {words}, and {other} shouted {upper}.",
)
PEOPLE = (
    "{name}'s birthday is on {date}.",
    "{name} paid {price} for {a_product} at the {street} Street store.",
    "On {day}, {name} met {other} near {street} Street.",
    "{name}'s dentist appointment is on {date}.",
    "The {product} that {other} ordered arrives on {date}.",
)
WORDS = word_pool()


def _say(rng: random.Random, templates: tuple[str, ...], k: int, **ctx) -> list[str]:
    return [t.format(**ctx) for t in rng.sample(templates, k)]


def _country(rng: random.Random) -> list[str]:
    c = rng.choice(COUNTRIES)
    ctx = dict(c._asdict(), country=c.name, name=rng.choice(NAMES), month=rng.choice(MONTHS))
    return _say(rng, COUNTRY, rng.randint(3, 4), **ctx)


def _animal(rng: random.Random) -> list[str]:
    an = rng.choice(ANIMALS)
    a_animal = f"{article(an.name)} {an.name}"
    ctx = dict(an._asdict(), a_animal=a_animal, A_animal=a_animal.capitalize(),
               Plural=an.plural.capitalize(), a_cls=f"{article(an.cls)} {an.cls}",
               legs_phrase=f"{NUMBER_WORDS[an.legs]} legs" if an.legs else "no legs",
               a_diet=f"{article(an.diet)} {an.diet}", diet_food=DIET_FOOD[an.diet],
               name=rng.choice(NAMES))
    sentences = _say(rng, ANIMAL, rng.randint(3, 4), **ctx)
    if an.sound:
        sentences += _say(rng, ANIMAL_SOUND, 1, **ctx)
    return sentences


def _food(rng: random.Random) -> list[str]:
    f = rng.choice(FOODS)
    ctx = dict(f._asdict(), Plural=f.plural.capitalize(), name=rng.choice(NAMES),
               be="is" if f.plural == f.name else "are", day=rng.choice(DAYS))
    return _say(rng, FOOD, 3, **ctx)


def _shop(rng: random.Random) -> list[str]:
    product = rng.choice(PRODUCTS)
    return _say(rng, SHOP_FACTS, rng.randint(3, 5), **SHOP, product=product.name,
                price=dollars(product.cents))


def _notice(rng: random.Random) -> list[str]:
    product = rng.choice(PRODUCTS).name
    price = dollars(rng.randint(2, 80) * 100 + rng.choice((0, 25, 50, 95, 99)))
    ctx = dict(street=rng.choice(STREETS), opens=f"{rng.randint(7, 10)} am",
               closes=f"{rng.randint(5, 9)} pm", closed_day=rng.choice(DAYS),
               return_days=rng.choice((7, 14, 21, 28, 30, 60, 90)),
               shipping=f"{rng.randint(2, 7)} business days", product=product, price=price)
    return [t.format(**ctx) for t in NOTICE[:1] + tuple(rng.sample(NOTICE[1:], 3))]


def _arithmetic(rng: random.Random) -> list[str]:
    a = rng.randint(2, 99)
    b = rng.randint(1, a)
    c, d = rng.randint(2, 30), rng.randint(2, 12)
    p, q = rng.randint(2, 60), rng.randint(2, 60)
    x, y = rng.randint(0, 99), rng.randint(0, 99)
    z = rng.randint(0, x)
    name, other = rng.sample(NAMES, 2)
    first, second = (product.name for product in rng.sample(PRODUCTS, 2))
    return _say(rng, ARITHMETIC, rng.randint(3, 4), name=name, other=other, a=a, b=b,
                x=x, y=y, z=z, x_plus_y=x + y, x_minus_z=x - z,
                total=a + b, diff=a - b, c=c, d=d, prod=c * d, p=p, q=q, pq=p + q,
                items=rng.choice(COUNTABLES)[1],
                A_product=f"{article(first).capitalize()} {first}",
                a_product2=f"{article(second)} {second}")


def _review(rng: random.Random) -> list[str]:
    verdict = rng.choice(("positive", "negative"))
    w1, w2 = rng.sample(POSITIVE_WORDS if verdict == "positive" else NEGATIVE_WORDS, 2)
    recommend = ("I would happily recommend it." if verdict == "positive"
                 else "I would not recommend it.")
    # Keep the template order: the review reads as opinion first, verdict last.
    picked = sorted(rng.sample(range(len(REVIEW)), 3))
    ctx = dict(product=rng.choice(PRODUCTS).name, day=rng.choice(DAYS), w1=w1, w2=w2,
               name=rng.choice(NAMES), street=rng.choice(STREETS), recommend=recommend,
               verdict=verdict)
    return [REVIEW[i].format(**ctx) for i in picked]


def _topic(rng: random.Random) -> list[str]:
    topic = rng.choice(tuple(TOPICS))
    k1, k2, k3 = rng.sample(TOPICS[topic], 3)
    return _say(rng, TOPIC, 3, topic=topic, k1=k1, k2=k2, k3=k3, name=rng.choice(NAMES))


def _wordplay(rng: random.Random) -> list[str]:
    """Letters of world words and made-up ones, spelled out as the letter tasks spell them."""
    word = random_word(rng)
    letter = rng.choice(word)
    count = word.count(letter)
    number = rng.randint(0, 999)
    words = rng.sample(WORDS, 3)
    return _say(rng, WORDPLAY, 3, word=word, rev=spelled(word[::-1]), spaced=" ".join(word),
                upper=spelled(word.upper()), n=len(word), spelled=spelled(word),
                novowel=spelled("".join(ch for ch in word if ch not in "aeiou")),
                sorted=spelled("".join(sorted(word))), letter=letter, count=count,
                times="time" if count == 1 else "times", number=number,
                parity="even" if number % 2 == 0 else "odd", words=" ".join(words),
                sorted_words=" ".join(sorted(words)))


def _notes(rng: random.Random) -> list[str]:
    """Something written down, then said again: text a model can only predict by copying."""
    name, other = rng.sample(NAMES, 2)
    code = rng.choice((str(rng.randint(100, 999999)), spelled(random_word(rng))))
    price = dollars(rng.randint(1, 99) * 100 + rng.choice((0, 25, 50, 75, 95, 99)))
    return _say(rng, NOTES, 3, name=name, other=other, code=code, number=rng.randint(1000, 9999),
                price=price, street=rng.choice(STREETS), word=spelled(random_word(rng)))


def _dictation(rng: random.Random) -> list[str]:
    """Lists of mostly made-up words said twice: no memory predicts the second saying, only the
    first one does, so these teach the model to copy from its context (what the letter tasks,
    the notices and the extraction tasks need) instead of recalling the corpus."""
    name, other = rng.sample(NAMES, 2)
    out = []
    for template in rng.sample(DICTATION, 2):
        words = [random_word(rng) for _ in range(rng.randint(2, 4))]
        if rng.random() < 0.5:
            words = [spelled(w) for w in words]
        out.append(template.format(name=name, other=other, words=" ".join(words),
                                   upper=" ".join(w.upper() for w in words)))
    return out


def _people(rng: random.Random) -> list[str]:
    name, other = rng.sample(NAMES, 2)
    product = rng.choice(PRODUCTS)
    return _say(rng, PEOPLE, 3, name=name, other=other, product=product.name,
                a_product=f"{article(product.name)} {product.name}",
                price=dollars(product.cents), street=rng.choice(STREETS),
                day=rng.choice(DAYS), date=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}")


# (paragraph kind, relative weight): the facts held-out tasks ask about, and the skills the
# held-in tasks train (sums, letters, copying from a notice or a note), get more.
PARAGRAPHS: tuple[tuple[Callable[[random.Random], list[str]], int], ...] = (
    (_country, 3), (_animal, 3), (_food, 1), (_shop, 1), (_notice, 2), (_arithmetic, 4),
    (_review, 1), (_topic, 2), (_wordplay, 4), (_people, 1), (_notes, 3), (_dictation, 20),
)


def iter_corpus(seed: int, n_bytes: int) -> Iterator[str]:
    """Paragraphs of prose until about `n_bytes` of UTF-8 (counting a blank line after each)."""
    rng = random.Random(seed)
    makers = [make for make, _ in PARAGRAPHS]
    weights = [w for _, w in PARAGRAPHS]
    written = 0
    while written < n_bytes:
        paragraph = " ".join(rng.choices(makers, weights)[0](rng))
        written += len(paragraph.encode("utf-8")) + 2  # + the "\n\n" that separates paragraphs
        yield paragraph


def write_corpus(path: str | os.PathLike, seed: int, n_bytes: int) -> int:
    """Write `iter_corpus(seed, n_bytes)` to `path`, one blank line apart; returns bytes written.

    Written to a temporary file beside `path` and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    data = "\n\n".join(iter_corpus(seed, n_bytes)).encode("utf-8") + b"\n"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(data)
