"""KV-cache decoding and sampling."""
from instructgpt.generation.decode import Generation, generate

__all__ = ["Generation", "generate"]
