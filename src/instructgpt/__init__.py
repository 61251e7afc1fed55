"""instructgpt: train instruction-following language models the InstructGPT way."""

__version__ = "0.1.0"
