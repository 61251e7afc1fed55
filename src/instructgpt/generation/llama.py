"""A lean forward for Llama-family weights over a preallocated KV cache: the decoder's fast path.

At the sizes this project trains on a CPU, decoding one token costs less in arithmetic than in
per-op overhead: the HF forward builds masks, cache objects and output dataclasses every step.
This forward reads the same weights (no copy except the fused q|k|v and gate|up matrices, made
once per `LeanLlama`) and does only the math:

    x = embed(ids)
    per layer:  h = rms(x);  q, k, v = h W_qkv (+ b);  rotary(q, k);  cache[k, v] at slot t
                x = x + attn(q, cache[:t+1]) W_o;  x = x + (silu(rms(x) W_g) * rms(x) W_u) W_d
    logits = rms(x) W_head

RMSNorm and rotary follow `transformers`' Llama code op for op, so greedy outputs equal
`model.generate` (a test checks). Models outside `supports()` take the generic path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Architectures whose decoder is Llama's: RMSNorm, rotary, GQA attention, SiLU-gated MLP.
# Qwen2 adds q/k/v biases, which the fused projection carries.
ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
STATIC_ROPE = ("default", "linear", "llama3", "yarn")
FOLD_ROTARY_MAX_BYTES = 512 * 1024  # per layer; see LeanLlama.__init__


def supports(model: torch.nn.Module) -> bool:
    """True when `model` is a plain (not PEFT-wrapped) Llama-family causal LM this forward computes exactly."""
    cfg = getattr(model, "config", None)
    if type(model).__name__ not in ARCHITECTURES or cfg is None:
        return False
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    return (getattr(cfg, "hidden_act", "silu") == "silu" and rope in STATIC_ROPE
            and not getattr(cfg, "mlp_bias", False) and not getattr(cfg, "use_sliding_window", False))


@dataclass
class KVCache:
    """L layers, B rows, S slots: keys and values of every position decoded so far."""

    keys: torch.Tensor     # (L, B, Hkv, S, D)
    values: torch.Tensor   # (L, B, Hkv, S, D)
    valid: torch.Tensor    # (B, S) bool, True on slots holding a real (non-pad) token
    length: int = 0        # slots filled


@dataclass
class _Layer:
    attn_norm: torch.Tensor   # (H,)
    qkv: torch.Tensor         # (2*Hq*D + 3*Hkv*D, H): rows of q, k, v, then rotate_half(q), rotate_half(k)
    qkv_bias: torch.Tensor | None
    out: torch.Tensor         # (Hq*D, H), transposed for addmm
    out_bias: torch.Tensor | None
    mlp_norm: torch.Tensor    # (H,)
    gate_up: torch.Tensor     # (2*I, H)
    down: torch.Tensor        # (I, H), transposed for addmm


def _rotate_rows(weight: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """The rows (or bias entries) that give rotate_half of a projection's output, head by head:
    rotate_half(x) = cat(-x2, x1), so negate the second half's rows and swap the halves."""
    w = weight.view(heads, head_dim, -1)
    half = head_dim // 2
    return torch.cat((-w[:, half:], w[:, :half]), dim=1).reshape(weight.shape)


def _projection(attn, heads: int, kv_heads: int, head_dim: int, fold: bool
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fused q|k|v weight and bias; with `fold`, also rot(q)|rot(k) rows, so that rotary costs
    two multiplies and an add instead of seven ops."""
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    rows = [q.weight, k.weight, v.weight]
    if fold:
        rows += [_rotate_rows(q.weight, heads, head_dim), _rotate_rows(k.weight, kv_heads, head_dim)]
    if q.bias is None:
        return torch.cat(rows), None
    bias = [q.bias, k.bias, v.bias]
    if fold:
        bias += [_rotate_rows(q.bias[:, None], heads, head_dim)[:, 0], _rotate_rows(k.bias[:, None], kv_heads,
                                                                                    head_dim)[:, 0]]
    return torch.cat(rows), torch.cat(bias)


class LeanLlama:
    """Decoding-only forward of a Llama-family `model`, weights taken as they are now.

    Build one per `generate` call: the fused matrices are copies, so a model trained between
    calls (PPO) is read afresh each time. Every op counts at small sizes (one costs ~10 µs on
    a small CPU, as much as a small matmul): rotary is folded into the q/k projection (small
    models only), norms are `F.rms_norm` (bitwise equal to Llama's), residual adds ride on `addmm`.
    """

    def __init__(self, model: torch.nn.Module):
        cfg = model.config
        self.dtype = model.dtype
        base = model.model
        self.embed = base.embed_tokens.weight
        self.norm, self.eps = base.norm.weight, base.norm.variance_epsilon
        self.head = model.lm_head.weight
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.scale = base.layers[0].self_attn.scaling
        self.inv_freq = base.rotary_emb.inv_freq.float()
        self.rope_scaling = float(getattr(base.rotary_emb, "attention_scaling", 1.0))
        # Folding rotary into the projection saves ops but reads (Hq+Hkv)·D more weight rows a step:
        # a win while ops cost more than memory (small models), a loss once weights stream from RAM.
        extra_bytes = (self.heads + self.kv_heads) * self.head_dim * self.hidden * self.embed.element_size()
        self.fold_rotary = extra_bytes <= FOLD_ROTARY_MAX_BYTES
        self.layers = []
        for layer in base.layers:
            attn, mlp = layer.self_attn, layer.mlp
            qkv, qkv_bias = _projection(attn, self.heads, self.kv_heads, self.head_dim, self.fold_rotary)
            self.layers.append(_Layer(
                layer.input_layernorm.weight, qkv, qkv_bias, attn.o_proj.weight.t(), attn.o_proj.bias,
                layer.post_attention_layernorm.weight,
                torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), mlp.down_proj.weight.t()))

    def new_cache(self, batch: int, slots: int) -> KVCache:
        """Room for `slots` positions per row; rotary angles are tabled for as many positions."""
        shape = (len(self.layers), batch, self.kv_heads, slots, self.head_dim)
        device = self.embed.device
        self.cos, self.sin = self.rotary_table(slots)
        return KVCache(torch.zeros(shape, dtype=self.dtype, device=device),
                       torch.zeros(shape, dtype=self.dtype, device=device),
                       torch.zeros((batch, slots), dtype=torch.bool, device=device))

    def rotary_table(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(length, D) cos and sin of positions 0..length-1, as `LlamaRotaryEmbedding` computes them."""
        freqs = torch.arange(length, device=self.inv_freq.device).float()[:, None] * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * self.rope_scaling, emb.sin() * self.rope_scaling
        return cos.to(self.dtype), sin.to(self.dtype)

    def rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), weight, self.eps)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, real: torch.Tensor,
                cache: KVCache) -> torch.Tensor:
        """(B, V) next-token logits after the last of T new tokens per row, appended to `cache`.

        input_ids, positions: (B, T); real: (B, T) bool, False on pad tokens (never attended to).
        """
        B, T = input_ids.shape
        start, stop = cache.length, cache.length + T
        cache.valid[:, start:stop] = real
        cache.length = stop
        # (B, 1, T, stop): attend to real earlier slots; a query always sees itself, so pad rows stay finite
        mask = cache.valid[:, None, None, :stop]
        if T > 1:
            mask = mask.expand(B, 1, T, stop).clone()
            mask[..., start:] &= torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
            mask[..., torch.arange(T), torch.arange(start, stop)] = True
        cos, sin = self.cos[positions][:, :, None], self.sin[positions][:, :, None]   # (B, T, 1, D)
        Hq, Hkv, D = self.heads, self.kv_heads, self.head_dim
        x = F.embedding(input_ids, self.embed).view(B * T, self.hidden)                # (B*T, H)
        for i, layer in enumerate(self.layers):
            qkv = F.linear(self.rms(x, layer.attn_norm), layer.qkv, layer.qkv_bias).view(B, T, -1, D)
            qk = qkv[:, :, :Hq + Hkv]                                                    # (B, T, Hq+Hkv, D)
            qk = qk * cos + (qkv[:, :, Hq + 2 * Hkv:] if self.fold_rotary else _rotate_half(qk)) * sin
            q = qk[:, :, :Hq].transpose(1, 2)                                            # (B, Hq, T, D)
            cache.keys[i, :, :, start:stop] = qk[:, :, Hq:].transpose(1, 2)
            cache.values[i, :, :, start:stop] = qkv[:, :, Hq + Hkv:Hq + 2 * Hkv].transpose(1, 2)
            keys, values = cache.keys[i, :, :, :stop], cache.values[i, :, :, :stop]
            if T == 1 and Hq != Hkv:
                # one query per head: the G heads sharing a key head attend as G queries of that head
                att = F.scaled_dot_product_attention(q.reshape(B, Hkv, Hq // Hkv, D), keys, values,
                                                     attn_mask=mask, scale=self.scale)
            else:
                att = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scale,
                                                     enable_gqa=Hq != Hkv)
            att = att.reshape(B, Hq, T, D).transpose(1, 2).reshape(B * T, Hq * D)
            x = torch.addmm(x, att, layer.out) if layer.out_bias is None else x + F.linear(att, layer.out.t(),
                                                                                            layer.out_bias)
            gate, up = F.linear(self.rms(x, layer.mlp_norm), layer.gate_up).chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(gate).mul_(up), layer.down)
        last = x.view(B, T, self.hidden)[:, -1]
        return F.linear(self.rms(last, self.norm), self.head)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
