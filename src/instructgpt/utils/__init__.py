"""Utilities: seeding, device and autocast, atomic IO, metrics logging."""

IGNORE_INDEX = -100  # label of positions that carry no loss (the PyTorch / HF convention)
