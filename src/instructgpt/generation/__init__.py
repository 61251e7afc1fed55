"""KV-cache decoding and sampling."""
from instructgpt.generation.batch import Sample, sample_many
from instructgpt.generation.decode import Generation, generate

__all__ = ["Generation", "Sample", "generate", "sample_many"]
