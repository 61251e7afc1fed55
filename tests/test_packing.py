"""Packed and padded batches of the same examples give the same per-example losses."""
import pytest
import torch

from instructgpt.data.packing import pack_batch, pad_batch
from instructgpt.objectives.sft import example_losses
from instructgpt.utils import IGNORE_INDEX


def examples():
    g = torch.Generator().manual_seed(0)
    out = []
    for length, prompt in [(5, 2), (9, 0), (3, 1), (12, 6), (7, 3), (4, 2)]:  # #1: no prompt, mid-row
        ids = torch.randint(3, 64, (length,), generator=g).tolist()
        out.append((ids, [i >= prompt for i in range(length)]))
    return out


def test_packing_layout():
    batch = pack_batch(examples(), max_len=16, pad_id=0)
    # 5+9 | 3+12 | 7+4 -> three rows of 16
    assert batch.input_ids.shape == (3, 16)
    assert batch.position_ids[0, :14].tolist() == list(range(5)) + list(range(9))
    assert batch.example_index[1, :15].tolist() == [2] * 3 + [3] * 12
    assert (batch.labels[0, 14:] == IGNORE_INDEX).all()
    mask = batch.attention_mask[0, 0]
    assert mask[6, 4] < -1e30 and mask[6, 5] == 0 and mask[4, 0] == 0 and mask[0, 1] < -1e30


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_equals_padded_per_example_loss(attn):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=64,
                                         max_position_embeddings=64, attn_implementation=attn)).eval()
    data = examples()
    results = []
    for batch in (pad_batch(data, pad_id=0), pack_batch(data, max_len=16, pad_id=0)):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits
        results.append(example_losses(logits, batch.labels, batch.example_index, len(data)))
        assert batch.num_loss_tokens == sum(sum(m[1:]) for _, m in data)
    (padded_sums, padded_tokens), (packed_sums, packed_tokens) = results
    assert torch.equal(padded_tokens, packed_tokens)
    assert torch.allclose(padded_sums, packed_sums, atol=1e-5)


def test_long_example_keeps_its_completion():
    ids, mask = list(range(3, 23)), [i >= 15 for i in range(20)]
    batch = pack_batch([(ids, mask)], max_len=8, pad_id=0)
    assert batch.input_ids[0].tolist() == ids[-8:]
    assert (batch.labels[0] != IGNORE_INDEX).sum() == 5
