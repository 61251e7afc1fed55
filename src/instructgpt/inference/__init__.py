"""Inference: the Python API over trained folders; `load(path)` -> an engine with generate / chat /
classify / answer."""
from instructgpt.inference.classify import Classifier, classify
from instructgpt.inference.engine import Completion, Engine, HeadsEngine, SamplingParams, load

__all__ = ["Classifier", "Completion", "Engine", "HeadsEngine", "SamplingParams", "classify", "load"]
