"""Rendering an instruction template with its input (shared by tasks, data and inference)."""
from __future__ import annotations


def render_instruction(instruction: str, input_text: str) -> str:
    """An instruction holding `{input}` gets it in place; otherwise the input follows it."""
    if "{input}" in instruction:
        return instruction.replace("{input}", input_text)
    return f"{instruction}\n\n{input_text}" if input_text else instruction
