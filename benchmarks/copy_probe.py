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

and prints, per model, the share of greedy continuations that are exactly right. Plain text, no
chat template: it reads a pretrained model as well as a tuned one (same tokenizer family).
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


if __name__ == "__main__":
    main()
