"""Named model sizes. Parameter counts are for a 4,096-token vocabulary."""
from __future__ import annotations

# hidden, layers, heads, intermediate; tiny ≈ 3M, small ≈ 25M, base ≈ 125M (llama, 4k vocab)
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512},
    "small": {"hidden_size": 384, "num_hidden_layers": 8, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}
