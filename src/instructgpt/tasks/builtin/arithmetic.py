"""Arithmetic clusters: bare arithmetic (+, -, x on small numbers) and word_problems."""
from __future__ import annotations

import random

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import COUNTABLES, NAMES, PRODUCTS, article


def _addition(rng: random.Random) -> Example:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    text = rng.choice((f"{a} + {b}", f"What is {a} plus {b}?", f"Add {a} and {b}."))
    return Example(input=text, output=str(a + b))


def _subtraction(rng: random.Random) -> Example:
    a = rng.randint(0, 99)
    b = rng.randint(0, a)  # results stay non-negative
    text = rng.choice((f"{a} - {b}", f"What is {a} minus {b}?", f"Subtract {b} from {a}."))
    return Example(input=text, output=str(a - b))


def _multiplication(rng: random.Random) -> Example:
    a, b = rng.randint(2, 30), rng.randint(2, 12)
    text = rng.choice((f"{a} x {b}", f"What is {a} times {b}?", f"Multiply {a} by {b}."))
    return Example(input=text, output=str(a * b))


def _two_names(rng: random.Random) -> tuple[str, str]:
    first, second = rng.sample(NAMES, 2)
    return first, second


def _word_problem_add(rng: random.Random) -> Example:
    name, other = _two_names(rng)
    _, items = rng.choice(COUNTABLES)
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    text = rng.choice((
        f"{name} had {a} {items} and bought {b} more. How many {items} does {name} have now?",
        f"{name} has {a} {items}. {other} gives {name} {b} more. How many {items} does {name} "
        f"have?",
        f"There are {a} {items} in a box and {b} {items} on the table. How many {items} are "
        f"there in total?",
    ))
    return Example(input=text, output=str(a + b))


def _word_problem_sub(rng: random.Random) -> Example:
    name, other = _two_names(rng)
    _, items = rng.choice(COUNTABLES)
    a = rng.randint(2, 30)
    b = rng.randint(1, a)
    text = rng.choice((
        f"{name} had {a} {items} and gave {b} to {other}. How many {items} are left?",
        f"{name} had {a} {items} and lost {b}. How many {items} does {name} have now?",
        f"A jar holds {a} {items}. {name} takes out {b}. How many {items} remain in the jar?",
    ))
    return Example(input=text, output=str(a - b))


def _shop_total(rng: random.Random) -> Example:
    first, second = (p.name for p in rng.sample(PRODUCTS, 2))
    p, q = rng.randint(2, 60), rng.randint(2, 60)
    name = rng.choice(NAMES)
    text = rng.choice((
        f"{article(first).capitalize()} {first} costs {p} dollars and {article(second)} "
        f"{second} costs {q} dollars. How much do they cost together, in dollars?",
        f"{name} buys {article(first)} {first} for {p} dollars and {article(second)} {second} "
        f"for {q} dollars. How many dollars does {name} spend?",
    ))
    return Example(input=text, output=str(p + q))


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="addition", kind="arithmetic", cluster="arithmetic", metric="numeric",
        instructions=(
            "Compute the sum. Answer with a number.",
            "{input}\n\nWhat is the result?",
            "Solve: {input}",
        ),
        generate=_addition),
    BuiltinTask(
        name="subtraction", kind="arithmetic", cluster="arithmetic", metric="numeric",
        instructions=(
            "Compute the difference. Answer with a number.",
            "{input}\n\nWhat is the result?",
            "Solve: {input}",
        ),
        generate=_subtraction),
    BuiltinTask(
        name="multiplication", kind="arithmetic", cluster="arithmetic", metric="numeric",
        instructions=(
            "Compute the product. Answer with a number.",
            "{input}\n\nWhat is the result?",
            "Solve: {input}",
        ),
        generate=_multiplication),
    BuiltinTask(
        name="word_problem_add", kind="arithmetic", cluster="word_problems", metric="numeric",
        instructions=(
            "Solve the word problem. Answer with a number.",
            "{input}\n\nGive only the final number.",
            "Read the story and answer the question: {input}",
        ),
        generate=_word_problem_add),
    BuiltinTask(
        name="word_problem_sub", kind="arithmetic", cluster="word_problems", metric="numeric",
        instructions=(
            "Solve the word problem. Answer with a number.",
            "{input}\n\nGive only the final number.",
            "Read the story and answer the question: {input}",
        ),
        generate=_word_problem_sub),
    BuiltinTask(
        name="shop_total", kind="arithmetic", cluster="word_problems", metric="numeric",
        instructions=(
            "Work out the total price. Answer with a number.",
            "{input}\n\nAnswer with the number of dollars.",
            "A customer asks: {input}",
        ),
        generate=_shop_total),
)
