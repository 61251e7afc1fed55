"""Can a model copy what it has just read? A probe of in-context copying (induction), in seconds.

    python benchmarks/copy_probe.py MODEL [MODEL ...] [--n 40]

Most held-in tasks of the built-in suite need a model to copy a span of its prompt: a price or a
name (extraction), an hour (store QA), the letters of a word (string_edit), the digits of a
number (arithmetic, word problems). So does a few-shot prompt. This probe continues pretraining-
corpus sentences whose answer is a fresh number or made-up word written a few tokens earlier:

    num   "The ticket number is 5817. Yara checked it twice:"   -> " 5817"
    word  "The password is t-a-v-o-m-i. Type"                   -> " t-a-v-o-m-i"
    rev   "The word tavomi spelled backwards is"                 -> " i-m-o-v-a-t"
    add   "34 plus 51 equals"                                    -> " 85"

and prints, per model, the share of greedy continuations that are exactly right. Exact copies
come late; a second table shows the skill forming: the loss in nats per token of a list of three
words (world words, made-up words, made-up words spelled out, or one 4-digit number) the first
time and the second time it is said, "The list said W. Yara copied it: W" (a model that copies
pays far less the second time). Plain text, no chat template: it reads a pretrained model as well
as a tuned one (same tokenizer family).
"""
from __future__ import annotations

import argparse
import random

import torch

from instructgpt.tasks.builtin.strings import random_word, spelled
from instructgpt.tasks.world import NAMES


def probes(n: int, seed: int = 7) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(seed)
    out: dict[str, list[tuple[str, str]]] = {"num": [], "word": [], "rev": [], "add": []}
    for _ in range(n):
        name = rng.choice(NAMES)
        number, word = rng.randint(1000, 9999), random_word(rng)
        x, y = rng.randint(0, 99), rng.randint(0, 99)
        out["num"].append((f"The ticket number is {number}. {name} checked it twice:", f" {number}"))
        out["word"].append((f"The password is {spelled(word)}. Type", f" {spelled(word)}"))
        out["rev"].append((f"The word {word} spelled backwards is", f" {spelled(word[::-1])}"))
        out["add"].append((f"{x} plus {y} equals", f" {x + y}"))
    return out


@torch.no_grad()
def score(folder: str, items: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    from instructgpt.generation import generate
    from instructgpt.models.build import load_model, pad_id
    from instructgpt.tokenizer.train import load_tokenizer
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    result = {}
    for kind, pairs in items.items():
        prompts = [tokenizer.encode(p, add_special_tokens=False) for p, _ in pairs]
        wants = [tokenizer.encode(a, add_special_tokens=False) for _, a in pairs]
        got = generate(model, prompts, pad_id=pad_id(tokenizer), stop_ids=[],
                       max_new_tokens=[len(w) for w in wants]).tokens
        result[kind] = sum(got[i, :len(w)].tolist() == w for i, w in enumerate(wants)) / len(wants)
    return result


LISTS = ("world", "made-up", "spelled", "number")


def list_probes(n: int, seed: int = 5) -> dict[str, list[str]]:
    """n lists of each kind: three world words, three made-up ones, three spelled, or one number."""
    from instructgpt.tasks.world import word_pool
    world = word_pool()
    rng = random.Random(seed)

    def made_up() -> str:
        while (word := random_word(rng)) in world:
            pass
        return word
    make = {"world": lambda: [rng.choice(world) for _ in range(3)],
            "made-up": lambda: [made_up() for _ in range(3)],
            "spelled": lambda: [spelled(random_word(rng)) for _ in range(3)],
            "number": lambda: [str(rng.randint(1000, 9999))]}
    return {kind: [" ".join(make[kind]()) for _ in range(n)] for kind in LISTS}


@torch.no_grad()
def repeat_loss(folder: str, lists: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """Per kind: mean nats per token of the list the first time and the second time it is said."""
    from instructgpt.models.build import load_model
    from instructgpt.tokenizer.train import load_tokenizer
    model, tokenizer = load_model(folder).eval(), load_tokenizer(folder)
    rng = random.Random(0)
    out = {}
    for kind, texts in lists.items():
        totals = [0.0, 0.0]
        counts = [0, 0]
        for text in texts:
            parts = [tokenizer.encode(p, add_special_tokens=False)
                     for p in ("The list said", f" {text}", f". {rng.choice(NAMES)} copied it:", f" {text}")]
            ids = torch.tensor([sum(parts, [])])
            nll = torch.nn.functional.cross_entropy(model(input_ids=ids).logits[0, :-1], ids[0, 1:], reduction="none")
            starts = [len(parts[0]), len(parts[0]) + len(parts[1]) + len(parts[2])]
            for i, (start, n) in enumerate(zip(starts, (len(parts[1]), len(parts[3])))):
                totals[i] += float(nll[start - 1:start - 1 + n].sum())
                counts[i] += n
        out[kind] = (totals[0] / counts[0], totals[1] / counts[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders (with their tokenizer)")
    parser.add_argument("--n", type=int, default=40, help="probes of each kind")
    args = parser.parse_args()
    items = probes(args.n)
    print(f"| model | {' | '.join(items)} |\n|---|{'---:|' * len(items)}")
    for folder in args.models:
        found = score(folder, items)
        print(f"| {folder} | {' | '.join(f'{found[k]:.3f}' for k in items)} |")
    lists = list_probes(args.n)
    print(f"\nnats per token, first -> second saying\n| model | {' | '.join(LISTS)} |\n|---|{'---:|' * len(LISTS)}")
    for folder in args.models:
        found = repeat_loss(folder, lists)
        print(f"| {folder} | {' | '.join(f'{a:.2f} -> {b:.2f}' for a, b in found.values())} |")


if __name__ == "__main__":
    main()
