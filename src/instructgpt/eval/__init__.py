"""Evaluation: task scores on held-in and held-out tasks, RM accuracy, win rates, the report."""
