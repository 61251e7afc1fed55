"""Training mechanics shared by every stage: optimizer, schedule, `fit()`, throughput."""
from instructgpt.train.loop import FitResult, fit

__all__ = ["FitResult", "fit"]
