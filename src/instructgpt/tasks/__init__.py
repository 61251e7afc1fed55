"""Tasks: the Task type, the registry, the built-in suite, loaders and metrics."""
from instructgpt.tasks.task import BuiltinTask, Example, Task, render_instruction

__all__ = ["BuiltinTask", "Example", "Task", "render_instruction"]
