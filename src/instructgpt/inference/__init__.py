"""Inference: the Python API over trained folders (classify; generate / chat / answer to come)."""
from instructgpt.inference.classify import Classifier, classify

__all__ = ["Classifier", "classify"]
