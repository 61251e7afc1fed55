"""A lean forward for Llama-family weights over a preallocated KV cache: the decoder's fast path.

At the sizes this project trains on a CPU, decoding one token costs less in arithmetic than in
per-op overhead: the HF forward builds masks, cache objects and output dataclasses every step.
This forward reads the same weights (small models: fused copies of q|k|v and gate|up, made once
per `LeanLlama`) and does only the math:

    x = embed(ids)
    per layer:  h = rms(x);  q, k, v = h W_qkv (+ b);  rotary(q, k);  cache[k, v] at slot t
                x = x + attn(q, cache[:t+1]) W_o;  x = x + (silu(rms(x) W_g) * rms(x) W_u) W_d
    logits = rms(x) W_head

A padded prompt batch runs its products on the real tokens only, and its last layer only for
each row's last token (the others' keys and values are all the cache needs).

The rotary angles come from the model's own rotary embedding, and its RMSNorms compute the
model's formula (in fp32 from the vector norm, four cheap ops instead of `F.rms_norm`'s nine on
a CPU; small models fold the norm's weight into the fused copies of the next product), so greedy
outputs equal `model.generate` (tests on fp32 and bf16). In fp32 on a CPU the products go
through oneDNN, the library torch.compile's CPU backend calls, instead of MKL's GEMM, which ran
the 16-row products of decoding 1.3-3.5x slower than oneDNN on packed weights (measured on
SmolLM2's and the tiny model's shapes); the sums differ in the last bits, not the greedy tokens
(tests).
Models outside `supports()` take the generic path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import rotate_half

# Architectures whose decoder is Llama's: RMSNorm, rotary, GQA attention, SiLU-gated MLP.
# Qwen2 adds q/k/v biases, which the fused projection carries.
ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
STATIC_ROPE = ("default", "linear", "llama3", "yarn")
FUSE_MAX_BYTES = 2 * 1024 * 1024  # per layer: fused copies for models this small; see LeanLlama
PACK_MAX_BYTES = 1024**3          # whole model: up to this size oneDNN gets reordered copies of the weights
ONEDNN_MIN_MACS = 500_000         # a product this small stays on MKL: oneDNN costs ~14 µs a call, MKL ~2 µs
SPAN = 64                         # attention reads the cache's first slots in whole spans of this many


def _onednn_linear():
    """oneDNN's linear op, or None where this build of torch has none."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


class Linear:
    """x W^T (+ b), and `add`: residual + x W^T (+ b). Products of at least ONEDNN_MIN_MACS
    multiply-adds with fp32 weights on a CPU go through oneDNN, others through `F.linear`.
    pack=True gives oneDNN a copy of W reordered into its blocked layout: 1.4-2.4x faster again
    at 16 rows (measured), for the memory of the copy."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, pack: bool = False):
        self.weight, self.bias = weight, bias
        self.weight_t = weight.t()  # a view, taken once: addmm's operand
        self.op = _onednn_linear() if weight.device.type == "cpu" and weight.dtype == torch.float32 else None
        self.rows_min = ONEDNN_MIN_MACS / weight.numel()
        if self.op is not None:
            self.onednn_weight = (torch.ops.mkldnn._reorder_linear_weight(weight.contiguous()) if pack
                                  else weight.contiguous())

    def _onednn(self, x: torch.Tensor) -> bool:
        """Large enough, and outside autocast: there (evaluation inside bf16 training) activations
        arrive in bf16, which oneDNN's op does not cast and F.linear does. Outside it, an fp32
        model's activations are fp32."""
        return self.op is not None and x.size(0) >= self.rows_min and not torch.is_autocast_enabled("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._onednn(x):
            return self.op(x, self.onednn_weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if self._onednn(x):
            return self.op.binary(x, residual, self.onednn_weight, self.bias, "add")
        if self.bias is None:
            return torch.addmm(residual, x, self.weight_t)
        return residual + F.linear(x, self.weight, self.bias)


def supports(model: torch.nn.Module) -> bool:
    """True when `model` is a plain (not PEFT-wrapped) Llama-family causal LM this forward computes exactly."""
    cfg = getattr(model, "config", None)
    if type(model).__name__ not in ARCHITECTURES or cfg is None:
        return False
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    return (getattr(cfg, "hidden_act", "silu") == "silu" and rope in STATIC_ROPE
            and not getattr(cfg, "mlp_bias", False) and not getattr(cfg, "use_sliding_window", False))


def prepare(model: torch.nn.Module) -> "LeanLlama | None":
    """`LeanLlama(model)`, its weights read now, or None where `supports()` says no (the HF forward)."""
    return LeanLlama(model) if supports(model) else None


@dataclass
class KVCache:
    """L layers, B rows, S slots: keys and values of every position decoded so far."""

    keys: torch.Tensor     # (L, B, Hkv, S, D)
    values: torch.Tensor   # (L, B, Hkv, S, D)
    bias: torch.Tensor     # (B, S) attention bias: 0 on slots holding a real (non-pad) token, -inf elsewhere
    cos: torch.Tensor      # (S, 1, D) rotary angles of positions 0..S-1, as the model's rotary embedding gives them
    sin: torch.Tensor      # (S, 1, D)
    length: int = 0        # slots filled

    def __post_init__(self):
        # Views taken once, not every step (each indexing is an op, and at small sizes ops cost more than
        # the math): each layer's (B, Hkv, S, D) keys and values, and the first `span` slots of those and
        # of the bias, a whole number of SPANs, that attention reads (slots not yet filled have bias -inf,
        # so attending over them changes nothing)
        self.layer_keys, self.layer_values = self.keys.unbind(0), self.values.unbind(0)
        self.span = 0
        self.span_keys = self.span_values = self.span_bias = None

    def spanning(self, stop: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Per-layer keys and values and the (B, 1, 1, span) bias over the first `span` >= `stop` slots."""
        span = min(self.bias.size(1), -(-stop // SPAN) * SPAN)
        if span != self.span:
            self.span = span
            self.span_keys = [k[:, :, :span] for k in self.layer_keys]
            self.span_values = [v[:, :, :span] for v in self.layer_values]
            self.span_bias = self.bias[:, None, None, :span]
        return self.span_keys, self.span_values, self.span_bias


@dataclass
class _Layer:
    """One decoder layer's weights. Fused (small models): `qkv` holds the rows of q, k, v, then
    rotate_half(q) and rotate_half(k), and `mlp_in` is gate|up; these are copies. Otherwise the
    model's own tensors. Either way, models up to PACK_MAX_BYTES give oneDNN packed copies."""

    attn_norm: "Norm"                   # the layer's RMSNorm
    qkv: list[Linear]                   # [fused] or [q, k, v]
    out: Linear                         # o_proj
    mlp_norm: "Norm"
    mlp_in: list[Linear]                # [gate|up] or [gate, up]
    down: Linear                        # down_proj


class Norm:
    """A Llama RMSNorm, x / sqrt(mean(x²) + eps) * weight. In fp32 from the vector norm: on a CPU
    `F.rms_norm` runs as nine ops (~10 µs on 16 x 128), this as four or five (~6 µs), the same
    formula to within rounding. `weight` None: the weight is folded into the next product."""

    def __init__(self, norm: torch.nn.Module, fold: bool = False):
        self.module, self.weight = norm, None if fold else norm.weight
        self.eps = torch.tensor(norm.variance_epsilon, dtype=torch.float32, device=norm.weight.device)
        self.inverse_width = 1.0 / norm.weight.numel()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        fp32 = x.dtype == torch.float32
        if self.weight is not None and not fp32:
            return self.module(x)  # a bf16 model: its own norm, bit for bit
        # bf16 activations of an fp32 model under autocast: computed in fp32, as HF does (and no `to` for
        # fp32 ones: one that changes nothing still costs a dispatch)
        x32 = x if fp32 else x.float()
        length = torch.linalg.vector_norm(x32, dim=-1, keepdim=True)
        inverse = torch.addcmul(self.eps, length, length, value=self.inverse_width).rsqrt_()  # 1 / rms(x)
        if self.weight is None:
            return x32 * inverse if fp32 else (x32 * inverse).to(x.dtype)
        return (x32 * inverse).mul_(self.weight)


def _rotate_rows(weight: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """The rows (or bias entries) that give rotate_half of a projection's output, head by head:
    rotate_half(x) = cat(-x2, x1), so negate the second half's rows and swap the halves."""
    w = weight.view(heads, head_dim, -1)
    half = head_dim // 2
    return torch.cat((-w[:, half:], w[:, :half]), dim=1).reshape(weight.shape)


def _fused_projection(attn, heads: int, kv_heads: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The q|k|v|rot(q)|rot(k) weight and bias: one matmul, and rotary costs two multiplies and an add."""
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    weight = torch.cat([q.weight, k.weight, v.weight, _rotate_rows(q.weight, heads, head_dim),
                        _rotate_rows(k.weight, kv_heads, head_dim)])
    if q.bias is None:
        return weight, None
    bias = torch.cat([q.bias, k.bias, v.bias, _rotate_rows(q.bias[:, None], heads, head_dim)[:, 0],
                      _rotate_rows(k.bias[:, None], kv_heads, head_dim)[:, 0]])
    return weight, bias


class LeanLlama:
    """Decoding-only forward of a Llama-family `model`, weights taken as they are now.

    Weights are read when it is built: build one per `generate` call where the model trains
    between calls (PPO); callers whose weights stay fixed (the inference engine, `sample_many`)
    build one and pass it to every call, which spares the copies below each time. Every
    op counts at small sizes (one costs ~10 µs on a small CPU, as much as a small matmul): small
    models get fused copies of q|k|v (with rotary folded in) and gate|up, in fp32 with the norms'
    weights folded in, so a layer is 4 matmuls and a dozen other ops. Larger models, where
    streaming the weights costs more than the ops, use their own tensors unfused. In fp32 on a
    CPU, models up to PACK_MAX_BYTES also get copies reordered for oneDNN (SmolLM2-135M: 0.5 GB
    more while decoding); larger ones none. Residual adds ride on the products (`Linear.add`).
    """

    @torch.no_grad()
    def __init__(self, model: torch.nn.Module):
        cfg = model.config
        self.dtype = model.dtype
        base = model.model
        self.embed = base.embed_tokens.weight
        self.norm = Norm(base.norm)
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.scale = base.layers[0].self_attn.scaling
        self.rotary_emb = base.rotary_emb
        rows = (2 * self.heads + 3 * self.kv_heads) * self.head_dim + 2 * cfg.intermediate_size
        self.fused = rows * self.hidden * self.embed.element_size() <= FUSE_MAX_BYTES
        self.fold = self.fused and self.dtype == torch.float32  # norm weights go into the fused copies
        self.pack = sum(p.numel() * p.element_size() for p in model.parameters()) <= PACK_MAX_BYTES
        self.layers = [self._layer(layer) for layer in base.layers]
        self.head = Linear(model.lm_head.weight, pack=self.pack)

    def _layer(self, layer) -> _Layer:
        attn, mlp, pack, fold = layer.self_attn, layer.mlp, self.pack, self.fold
        attn_norm, mlp_norm = layer.input_layernorm, layer.post_attention_layernorm
        if self.fused:
            weight, bias = _fused_projection(attn, self.heads, self.kv_heads, self.head_dim)
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            if fold:  # W (x * w) = (W diag(w)) x
                weight, gate_up = weight * attn_norm.weight, gate_up * mlp_norm.weight
            qkv, mlp_in = [Linear(weight, bias, pack=pack)], [Linear(gate_up, pack=pack)]
        else:
            qkv = [Linear(lin.weight, lin.bias, pack=pack) for lin in (attn.q_proj, attn.k_proj, attn.v_proj)]
            mlp_in = [Linear(mlp.gate_proj.weight, pack=pack), Linear(mlp.up_proj.weight, pack=pack)]
        return _Layer(Norm(attn_norm, fold), qkv, Linear(attn.o_proj.weight, attn.o_proj.bias, pack=pack),
                      Norm(mlp_norm, fold), mlp_in, Linear(mlp.down_proj.weight, pack=pack))

    def _qkv(self, h: torch.Tensor, layer: _Layer, B: int, T: int, cos, sin):
        """(B, T, heads, D) q, k (rotary applied) and v."""
        Hq, Hkv, D = self.heads, self.kv_heads, self.head_dim
        if self.fused:
            qk, v, qk_rotated = layer.qkv[0](h).view(B, T, -1, D).split((Hq + Hkv, Hkv, Hq + Hkv), dim=2)
            q, k = torch.addcmul(qk * cos, qk_rotated, sin).split((Hq, Hkv), dim=2)
            return q, k, v
        q, k, v = (linear(h).view(B, T, -1, D) for linear in layer.qkv)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v

    def _mlp_in(self, h: torch.Tensor, layer: _Layer) -> torch.Tensor:
        """silu(h W_gate) * (h W_up)."""
        if self.fused:
            gate, up = layer.mlp_in[0](h).chunk(2, dim=-1)
        else:
            gate, up = layer.mlp_in[0](h), layer.mlp_in[1](h)
        return F.silu(gate).mul_(up)

    def new_cache(self, batch: int, slots: int) -> KVCache:
        """Room for `slots` positions per row, with their rotary angles from the model's own embedding."""
        shape = (len(self.layers), batch, self.kv_heads, slots, self.head_dim)
        device = self.embed.device
        positions = torch.arange(slots, device=device)[None]
        cos, sin = self.rotary_emb(torch.empty(0, dtype=self.dtype, device=device), positions)   # (1, S, D)
        return KVCache(torch.zeros(shape, dtype=self.dtype, device=device),
                       torch.zeros(shape, dtype=self.dtype, device=device),
                       torch.full((batch, slots), float("-inf"), dtype=self.dtype, device=device),
                       cos[0, :, None], sin[0, :, None])

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, real: torch.Tensor,
                cache: KVCache) -> torch.Tensor:
        """(B, V) next-token logits after the last of T new tokens per row, appended to `cache`.

        input_ids, positions: (B, T); real: (B, T) bool, False on pad tokens (never attended to).
        """
        B, T = input_ids.shape
        start, stop = cache.length, cache.length + T
        cache.bias[:, start:stop].masked_fill_(real, 0.0)
        cache.length = stop
        # (B, 1, T, span), additive: real earlier slots are 0. Kept in the cache as a bias, so a step of
        # one token adds no ops; a boolean mask would be converted in every layer's attention.
        span_keys, span_values, mask = cache.spanning(stop)
        if T > 1:  # causal among the new tokens; a query always sees itself, so pad rows stay finite
            mask = mask.expand(B, 1, T, mask.size(-1)).clone()
            mask[..., start:stop] += torch.full((T, T), float("-inf"), dtype=mask.dtype, device=mask.device).triu(1)
            mask[..., torch.arange(T), torch.arange(start, stop)] = 0.0
        # A prompt with padding runs its products on its N real tokens only, as one row of N (the
        # decode benchmark's 16 prompts of 10-40 tokens: 367 of 640); attention keeps the (B, T) layout.
        packed = T > 1 and bool(real[:, -1].all()) and not bool(real.all())
        if packed:
            rows, cols = real.nonzero(as_tuple=True)                                      # (N,), row by row
            ends = real.sum(1).cumsum(0) - 1                                              # each row's last token
            input_ids, positions = input_ids[rows, cols][None], positions[rows, cols][None]  # (1, N)
        cos, sin = cache.cos[positions], cache.sin[positions]                           # (B | 1, T | N, 1, D)
        Hq, D, t = self.heads, self.head_dim, T
        x = F.embedding(input_ids, self.embed).view(-1, self.hidden)                   # (B*T or N, H)
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer.attn_norm(x), layer, *input_ids.shape, cos, sin)  # (B, T | 1, T | N, ., D)
            keys, values = cache.layer_keys[i], cache.layer_values[i]                   # (B, Hkv, S, D)
            if packed:  # (under autocast k and v may be bf16 where the cache is fp32: index_put does not cast)
                keys[rows, :, cols + start] = k[0].to(keys.dtype)
                values[rows, :, cols + start] = v[0].to(values.dtype)
            else:
                keys[:, :, start:stop] = k.transpose(1, 2)
                values[:, :, start:stop] = v.transpose(1, 2)
            if t > 1 and i == len(self.layers) - 1:
                # the last layer's keys and values are cached; only each row's last position goes on
                q, x = (q[0, ends], x[ends]) if packed else (q[:, -1], x.view(B, T, -1)[:, -1].contiguous())
                q, mask, t = q[:, None], mask[..., -1:, :], 1
            elif packed:
                q = q.new_zeros(B, T, Hq, D).index_put_((rows, cols), q[0])
            att = self._attend(q, span_keys[i], span_values[i], mask)
            att = (att[rows, cols] if packed and t > 1 else att).reshape(-1, Hq * D)
            x = layer.out.add(att, x)
            x = layer.down.add(self._mlp_in(layer.mlp_norm(x), layer), x)
        return self.head(self.norm(x))                                                   # x: (B, H)

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """(B, t, Hq, D): queries q (B, t, Hq, D) attending over the cached keys and values (B, Hkv, S, D)."""
        B, t, Hq, D = q.shape
        Hkv = keys.size(1)
        if t == 1 and Hq != Hkv:
            # one query per head: the G heads sharing a key head attend as G queries of that head
            att = F.scaled_dot_product_attention(q.reshape(B, Hkv, Hq // Hkv, D), keys, values,
                                                 attn_mask=mask, scale=self.scale)
        else:
            att = F.scaled_dot_product_attention(q.transpose(1, 2), keys, values, attn_mask=mask,
                                                 scale=self.scale, enable_gqa=Hq != Hkv)
        if t == 1:  # (B, Hq, 1, D) and (B, 1, Hq, D) are the same memory: one view instead of two ops
            return att.view(B, 1, Hq, D)
        return att.reshape(B, Hq, t, D).transpose(1, 2)

