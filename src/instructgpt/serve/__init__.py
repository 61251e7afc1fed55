"""Serving: the OpenAI-compatible app over one model and the web chat page (`instructgpt serve MODEL`)."""
from instructgpt.serve.app import build_app, serve

__all__ = ["build_app", "serve"]
