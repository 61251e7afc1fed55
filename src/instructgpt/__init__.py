"""instructgpt: train instruction-following language models the InstructGPT way."""

__version__ = "0.1.0"


def load(path, device: str = "auto", dtype: str = "auto"):
    """The inference engine for a model folder: `.generate / .chat / .classify / .answer`.

    Imported lazily so `import instructgpt` stays light (no torch).
    """
    from instructgpt.inference import load as _load
    return _load(path, device, dtype)
