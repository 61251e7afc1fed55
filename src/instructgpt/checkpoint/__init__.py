"""Checkpoints and run folders: atomic saves, train state for --resume, HF model folders."""
from instructgpt.checkpoint.store import (is_complete, latest_checkpoint, load_checkpoint, mark_complete,
                                          save_checkpoint, save_hf_folder, unwrap)

__all__ = ["is_complete", "latest_checkpoint", "load_checkpoint", "mark_complete", "save_checkpoint",
           "save_hf_folder", "unwrap"]
