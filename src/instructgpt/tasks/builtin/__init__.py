"""The built-in task suite: procedurally generated tasks over the small world of `world.py`.

Clusters (held-out ones marked *): sentiment, topic*, categorize, extraction,
customer_service, arithmetic, word_problems, string_edit, string_count,
constrained_generation, world_facts*.
"""
from __future__ import annotations

from instructgpt.tasks.builtin import arithmetic, classify, generate, knowledge, service, strings
from instructgpt.tasks.task import BuiltinTask

BUILTIN_TASKS: tuple[BuiltinTask, ...] = (
    *classify.TASKS, *service.TASKS, *arithmetic.TASKS, *strings.TASKS, *generate.TASKS,
    *knowledge.TASKS,
)

# Never trained on in SFT; evaluated zero-shot. world_facts: its facts fill the pretraining
# corpus and describe_animal / describe_country (held in) use the same facts in another form.
# topic: the corpus ties keywords to topic names, and sentiment / categorize teach the
# "answer with one label" format.
DEFAULT_HELD_OUT_CLUSTERS: tuple[str, ...] = ("world_facts", "topic")

__all__ = ["BUILTIN_TASKS", "DEFAULT_HELD_OUT_CLUSTERS"]
