"""String clusters: string_edit (rewrite one word or a few) and string_count (count letters)."""
from __future__ import annotations

import random
import string

from instructgpt.tasks.task import BuiltinTask, Example
from instructgpt.tasks.world import DAYS, NAMES, PRODUCTS, STREETS, article, word_pool

WORDS = word_pool()
VOWELS = frozenset("aeiou")


CONSONANTS, VOWEL_LETTERS = "bdfgklmnprstvz", "aeiou"


def random_word(rng: random.Random) -> str:
    """Half the time a world word (seen in the corpus), half a made-up one such as 'tavomi'.

    The made-up words keep the input space in the thousands (the world has ~340 words) and
    test the skill rather than a memorised answer.
    """
    if rng.random() < 0.5:
        return rng.choice(WORDS)
    syllables = (rng.choice(CONSONANTS) + rng.choice(VOWEL_LETTERS)
                 for _ in range(rng.randint(2, 3)))
    return "".join(syllables) + (rng.choice(CONSONANTS) if rng.random() < 0.3 else "")


def _word_task(transform):
    """A generator whose input is one word and whose output is `transform(word)`."""
    def generate(rng: random.Random) -> Example:
        word = random_word(rng)
        return Example(input=word, output=transform(word))
    return generate


def spelled(word: str) -> str:
    """'house' -> 'h-o-u-s-e'. Byte-level BPE hides a word's letters inside multi-letter tokens;
    spelled out, every letter is its own token, so letter tasks test the skill, not the tokenizer.
    Hyphens vanish under answer normalisation, so 'e-s-u-o-h' also matches 'esuoh'."""
    return "-".join(word)


def _letter_task(transform):
    """Input: a word spelled out; output: `transform(word)` spelled out (or a count, as is)."""
    def generate(rng: random.Random) -> Example:
        word = random_word(rng)
        out = transform(word)
        return Example(input=spelled(word), output=out if out.isdigit() else spelled(out))
    return generate


def remove_vowels(word: str) -> str:
    return "".join(ch for ch in word if ch not in VOWELS)


def _uppercase_words(rng: random.Random) -> Example:
    """Spelled words in capitals: 'g-a-r-d-e-n m-i-l-l' -> 'G-A-R-D-E-N M-I-L-L'. A BPE token of
    'GARDEN' shares nothing with 'garden'; spelled, the task is the letters' case, as it says."""
    words = [random_word(rng) for _ in range(rng.randint(2, 3))]
    return Example(input=" ".join(spelled(w) for w in words),
                   output=" ".join(spelled(w.upper()) for w in words))


def _sort_words(rng: random.Random) -> Example:
    """Three distinct words, spelled: 'o-w-l b-a-n-a-n-a d-o-g' -> 'b-a-n-a-n-a d-o-g o-w-l'.
    As BPE tokens a word's first letter is hidden and the tiny models wrote unrelated words;
    spelled, the order is in the letters (and sorting spelled words sorts the words)."""
    words: list[str] = []
    while len(words) < 3:
        word = random_word(rng)
        if word not in words:
            words.append(word)
    return Example(input=" ".join(spelled(w) for w in words),
                   output=" ".join(spelled(w) for w in sorted(words)))


def _count_letter(rng: random.Random) -> Example:
    word = random_word(rng)
    # Mostly a letter that occurs; sometimes one that does not, whose count is 0.
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice(string.ascii_lowercase)
    text = rng.choice((f"Word: {spelled(word)}. Letter: {letter}",
                       f"How many times does the letter {letter} appear in {spelled(word)}?"))
    return Example(input=text, output=str(word.count(letter)))


def _count_words(rng: random.Random) -> Example:
    name, product = rng.choice(NAMES), rng.choice(PRODUCTS).name
    street, day, other = rng.choice(STREETS), rng.choice(DAYS), rng.choice(NAMES)
    text = rng.choice((
        f"{name} bought {article(product)} {product} on {day}.",
        f"On {day} {name} went to the {street} Street store with {other}.",
        f"{name} gave the {product} to {other}.",
        f"The {product} at the {street} Street store was sold to {name} on {day}.",
        f"{name} and {other} met on {street} Street.",
    ))
    return Example(input=text, output=str(len(text.split())))


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask(
        name="reverse_word", kind="rewrite", cluster="string_edit", metric="exact_match",
        instructions=(
            "Write the word backwards.",
            "Reverse the letters of the word \"{input}\".",
            "Spell {input} from the last letter to the first.",
        ),
        generate=_letter_task(lambda w: w[::-1])),
    BuiltinTask(
        name="uppercase_words", kind="rewrite", cluster="string_edit", metric="exact_match_cased",
        instructions=(
            "Rewrite the text in capital letters.",
            "Convert to uppercase: {input}",
            "{input}\n\nWrite the words above using only capital letters.",
        ),
        generate=_uppercase_words),
    BuiltinTask(
        name="remove_vowels", kind="rewrite", cluster="string_edit", metric="exact_match",
        instructions=(
            "Remove every vowel (a, e, i, o, u) from the word.",
            "Write \"{input}\" without its vowels.",
            "Delete the letters a, e, i, o and u from this word.",
        ),
        generate=_letter_task(remove_vowels)),
    BuiltinTask(
        name="sort_letters", kind="rewrite", cluster="string_edit", metric="exact_match",
        instructions=(
            "Sort the letters of the word in alphabetical order.",
            "Put the letters of \"{input}\" in alphabetical order.",
            "Rearrange the letters of this word from a to z.",
        ),
        generate=_letter_task(lambda w: "".join(sorted(w)))),
    BuiltinTask(
        name="sort_words", kind="rewrite", cluster="string_edit", metric="exact_match",
        instructions=(
            "Sort these words in alphabetical order.",
            "Put the words in alphabetical order: {input}",
            "{input}\n\nList the words above alphabetically, separated by spaces.",
        ),
        generate=_sort_words),
    BuiltinTask(
        name="spell_word", kind="rewrite", cluster="string_edit", metric="exact_match",
        instructions=(
            "Spell the word letter by letter, with a hyphen between letters.",
            "How do you spell \"{input}\"? Separate the letters with hyphens.",
            "Write each letter of this word, joined by hyphens.",
        ),
        generate=_word_task(spelled)),
    BuiltinTask(
        name="count_letters", kind="qa", cluster="string_count", metric="numeric",
        instructions=(
            "How many letters are in this word?",
            "Count the letters in the word \"{input}\".",
            "{input}\n\nHow long is that word, in letters?",
        ),
        generate=_letter_task(lambda w: str(len(w)))),
    BuiltinTask(
        name="count_letter_occurrences", kind="qa", cluster="string_count", metric="numeric",
        instructions=(
            "Count how many times the letter occurs in the word.",
            "{input}\n\nGive the count as a number.",
            "Answer with a number: {input}",
        ),
        generate=_count_letter),
    BuiltinTask(
        name="count_words", kind="qa", cluster="string_count", metric="numeric",
        instructions=(
            "How many words are in this sentence?",
            "Count the words in: {input}",
            "{input}\n\nHow many words does the sentence above have?",
        ),
        generate=_count_words),
)
