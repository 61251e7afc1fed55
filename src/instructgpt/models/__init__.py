"""Models: presets, building and loading HF models, importing GGUF files and model wheels."""
