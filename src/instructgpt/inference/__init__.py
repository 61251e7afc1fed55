"""Inference: the Python API over trained folders; `load(path)` -> an engine with generate / chat /
classify / answer."""
from instructgpt.inference.classify import Classifier
from instructgpt.inference.engine import Completion, Engine, HeadsEngine, SamplingParams, classify, load

__all__ = ["Classifier", "Completion", "Engine", "HeadsEngine", "SamplingParams", "classify", "load"]
