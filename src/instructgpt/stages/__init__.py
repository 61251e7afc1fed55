"""Stages: one file per command, each a `run(cfg)`."""
