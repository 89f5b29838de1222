"""Multi-head attention, one head at a time in the notation of the lecture (Vaswani et al. 2017;
Elhage et al. 2021):

    q_h = x W_Q^h + b_Q^h        k_h = x W_K^h + b_K^h        v_h = x W_V^h + b_V^h
    A_h = softmax(q_h k_h^T / sqrt(d_head) + mask)            (hook_attn_scores, hook_pattern)
    z_h = A_h v_h                                              (hook_z)
    attn_out = sum_h z_h W_O^h + b_O                           (hook_result holds each z_h W_O^h)

Convention: activations are row vectors and weights multiply on the right, so
``W_Q^h [d_model, d_head]`` and ``W_O^h [d_head, d_model]``. The per-head circuits are then
``QK^h = W_Q^h W_K^h^T [d_model, d_model]`` (a query row times QK^h times a key column gives the
score) and ``OV^h = W_V^h W_O^h [d_model, d_model]`` (a source row times OV^h is what the head
writes), both as TransformerLens ``FactoredMatrix`` so no d_model x d_model product is formed.

Grouped-/multi-query attention (Ainslie et al. 2023; Shazeer 2019): ``n_key_value_heads``
K/V heads, each shared by ``n_heads / n_key_value_heads`` consecutive query heads.

Storage: Q, K and V weights live in one tensor ``w_qkv [d_model, n_heads + 2 n_kv, d_head]`` so
the projection is a single matrix product with no copy; ``W_Q``, ``W_K``, ``W_V`` are
TransformerLens-shaped views ``[heads, d_model, d_head]`` of that same memory.

Fast path: when nothing hooks ``hook_attn_scores`` or ``hook_pattern`` (forward or backward),
scores and pattern are never materialised and PyTorch's fused
``scaled_dot_product_attention`` computes ``z`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens import FactoredMatrix
from transformer_lens.hook_points import HookPoint

from models.components.norms import is_hooked
from models.components.positions import alibi_bias, alibi_slopes, apply_rotary
from models.config import ModelConfig


class KVCache:
    """Keys and values already computed, per attention layer, for incremental decoding.

    Self-attention appends the new positions' keys/values at every step (after rotary, so they
    are never rotated twice); cross-attention stores the encoder output's keys/values once. The
    hooks ``hook_k`` / ``hook_v`` see only what a step computes, as in TransformerLens.
    """

    def __init__(self):
        self.entries: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:  # positions already cached by self-attention
        for module, (k, _) in self.entries.items():
            if not module.cross:
                return k.shape[1]
        return 0

    def select(self, index: Tensor) -> "KVCache":
        """Keep batch rows ``index`` (beam search reorders them)."""
        out = KVCache()
        out.entries = {m: (k[index], v[index]) for m, (k, v) in self.entries.items()}
        return out


@dataclass
class AttentionContext:
    """What every attention layer of one forward pass shares; built once by the model."""

    q_positions: Tensor  # [batch, q] absolute positions of the queries
    k_positions: Tensor  # [batch, k]
    mask: Optional[Bool[Tensor, "batch 1 q k"]]  # True = may attend; None = see `causal`
    causal: bool  # with mask None: plain causal mask (True) or no mask at all (False)
    rotary_q: Optional[tuple[Tensor, Tensor]] = None  # (cos, sin) [batch, q, 1, rotary_dim]
    rotary_k: Optional[tuple[Tensor, Tensor]] = None
    cache: Optional[KVCache] = None  # incremental decoding: past keys/values, updated in place

    _causal_mask: Optional[Tensor] = field(default=None, repr=False)

    def explicit_mask(self) -> Optional[Bool[Tensor, "batch 1 q k"]]:
        """The mask as a tensor even in the plain causal case (built once per forward pass)."""
        if self.mask is not None or not self.causal:
            return self.mask
        if self._causal_mask is None:
            q, k = self.q_positions.shape[1], self.k_positions.shape[1]
            self._causal_mask = build_mask("causal", q, k, device=self.q_positions.device, explicit=True)
        return self._causal_mask


def build_mask(
    kind: str,
    q_len: int,
    k_len: int,
    key_padding: Optional[Bool[Tensor, "batch k"]] = None,
    prefix_length: int = 0,
    device: torch.device | str | None = None,
    explicit: bool = False,
    sliding_window: Optional[int] = None,
) -> Optional[Bool[Tensor, "batch 1 q k"]]:
    """Boolean "may attend" mask, or (unless ``explicit``) None when a plain causal mask or no
    mask suffices, which lets the fused kernel use its own causal masking.

    Queries are aligned to the end of the keys (a query at index i of q sits at key position
    k_len - q_len + i), which is what decoding with a key/value cache needs.
    """
    windowed = sliding_window is not None and k_len > sliding_window
    plain = key_padding is None and not windowed and ((kind == "causal" and q_len == k_len) or kind == "bidirectional")
    if plain and not explicit:
        return None
    q_idx = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_idx = torch.arange(k_len, device=device)[None, :]
    if kind == "causal":
        allowed = k_idx <= q_idx
    elif kind == "prefix":  # prefix-LM: the first prefix_length real tokens are bidirectional, the rest causal
        if key_padding is None:
            in_prefix = k_idx < prefix_length  # [1, k]
        else:  # count real tokens only, so left padding does not shift the prefix
            real = key_padding.bool()
            in_prefix = (real.long().cumsum(-1) <= prefix_length) & real  # [batch, k]
            in_prefix = in_prefix[:, None, None, :]
        allowed = (k_idx <= q_idx) | in_prefix
    else:
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    if windowed:
        allowed = allowed & (q_idx - k_idx < sliding_window)
    if allowed.dim() == 2:
        allowed = allowed[None, None]  # [1, 1, q, k]
    if key_padding is not None:
        allowed = allowed & key_padding[:, None, None, :].bool()
        # A padding query that may see nothing would give NaN; let it see everything (its
        # output is never read) so no NaN reaches a cache or a sum.
        allowed = allowed | ~allowed.any(-1, keepdim=True)
    return allowed


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0, cross: bool = False):
        super().__init__()
        self.cfg = cfg
        self.layer = layer
        self.cross = cross  # queries from the decoder, keys/values from the encoder output
        H, K, d = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head
        self.w_qkv = nn.Parameter(torch.empty(cfg.d_model, H + 2 * K, d, dtype=cfg.dtype))
        self.b_qkv = nn.Parameter(torch.zeros(H + 2 * K, d, dtype=cfg.dtype)) if cfg.attn_bias else None
        self.W_O = nn.Parameter(torch.empty(H, d, cfg.d_model, dtype=cfg.dtype))
        self.b_O = nn.Parameter(torch.zeros(cfg.d_model, dtype=cfg.dtype)) if cfg.attn_out_bias else None
        self.use_rotary = cfg.positional_embedding_type == "rotary" and not cross
        self.use_alibi = cfg.positional_embedding_type == "alibi" and not cross
        if self.use_alibi:
            self.register_buffer("alibi_slopes", alibi_slopes(H), persistent=False)

        self.hook_q = HookPoint()  # [batch, pos, head_index, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head_index, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head_index, d_head]
        if self.use_rotary:
            self.hook_rot_q = HookPoint()  # [batch, pos, head_index, d_head]
            self.hook_rot_k = HookPoint()  # [batch, pos, kv_head_index, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head_index, query_pos, key_pos], -inf where masked
        self.hook_pattern = HookPoint()  # [batch, head_index, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head_index, d_head]
        self.hook_result = HookPoint()  # [batch, pos, head_index, d_model]

    # ----------------------------------------------------------------- weights
    @property
    def W_Q(self) -> Float[Tensor, "n_heads d_model d_head"]:
        return self.w_qkv[:, : self.cfg.n_heads].transpose(0, 1)

    @property
    def W_K(self) -> Float[Tensor, "n_kv_heads d_model d_head"]:
        H, K = self.cfg.n_heads, self.cfg.n_key_value_heads
        return self.w_qkv[:, H : H + K].transpose(0, 1)

    @property
    def W_V(self) -> Float[Tensor, "n_kv_heads d_model d_head"]:
        H, K = self.cfg.n_heads, self.cfg.n_key_value_heads
        return self.w_qkv[:, H + K :].transpose(0, 1)

    def _bias(self, start: int, stop: int) -> Tensor:
        if self.b_qkv is None:
            return torch.zeros(stop - start, self.cfg.d_head, dtype=self.w_qkv.dtype, device=self.w_qkv.device)
        return self.b_qkv[start:stop]

    @property
    def b_Q(self) -> Float[Tensor, "n_heads d_head"]:
        return self._bias(0, self.cfg.n_heads)

    @property
    def b_K(self) -> Float[Tensor, "n_kv_heads d_head"]:
        H, K = self.cfg.n_heads, self.cfg.n_key_value_heads
        return self._bias(H, H + K)

    @property
    def b_V(self) -> Float[Tensor, "n_kv_heads d_head"]:
        H, K = self.cfg.n_heads, self.cfg.n_key_value_heads
        return self._bias(H + K, H + 2 * K)

    def _per_query_head(self, w: Tensor, dim: int = 0) -> Tensor:
        """Repeat K/V heads along ``dim`` so that index h is the K/V head query head h reads."""
        group = self.cfg.n_heads // self.cfg.n_key_value_heads
        return w.repeat_interleave(group, dim=dim) if group > 1 else w

    @property
    def QK(self) -> FactoredMatrix:
        """``W_Q^h W_K^h^T`` per query head, [n_heads, d_model, d_model] (factored)."""
        return FactoredMatrix(self.W_Q, self._per_query_head(self.W_K).transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """``W_V^h W_O^h`` per query head, [n_heads, d_model, d_model] (factored)."""
        return FactoredMatrix(self._per_query_head(self.W_V), self.W_O)

    # ----------------------------------------------------------------- forward
    def _project(self, x: Tensor, start: int, stop: int) -> Tensor:
        """x @ w_qkv[:, start:stop] (+ bias) -> [batch, pos, stop-start, d_head], one GEMM."""
        w = self.w_qkv[:, start:stop].flatten(1)
        out = x @ w
        if self.b_qkv is not None:
            out = out + self.b_qkv[start:stop].flatten()
        return out.view(*x.shape[:-1], stop - start, self.cfg.d_head)

    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        ctx: AttentionContext,
        kv_input: Optional[Float[Tensor, "batch kv_pos d_model"]] = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        H, K = self.cfg.n_heads, self.cfg.n_key_value_heads
        cache = ctx.cache
        if kv_input is None:
            q, k, v = self._project(x, 0, H + 2 * K).split([H, K, K], dim=2)
        elif cache is not None and self in cache.entries:  # cross-attention: encoder K/V computed once
            q, (k, v) = self._project(x, 0, H), cache.entries[self]
        else:
            q = self._project(x, 0, H)
            k, v = self._project(kv_input, H, H + 2 * K).split([K, K], dim=2)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if self.use_rotary:
            q = self.hook_rot_q(apply_rotary(q, *ctx.rotary_q, self.cfg.rotary_adjacent_pairs))
            k = self.hook_rot_k(apply_rotary(k, *ctx.rotary_k, self.cfg.rotary_adjacent_pairs))
        if cache is not None:
            if not self.cross and self in cache.entries:
                past_k, past_v = cache.entries[self]
                k, v = torch.cat([past_k, k], dim=1), torch.cat([past_v, v], dim=1)
            cache.entries[self] = (k, v)
        z = self.attend(q, k, v, ctx)
        z = self.hook_z(z)
        if is_hooked(self.hook_result):
            result = self.hook_result(torch.einsum("bphd,hdm->bphm", z, self.W_O))
            out = result.sum(dim=2)
        else:
            out = z.reshape(*z.shape[:2], -1) @ self.W_O.flatten(0, 1)
        return out + self.b_O if self.b_O is not None else out

    def attend(self, q: Tensor, k: Tensor, v: Tensor, ctx: AttentionContext) -> Float[Tensor, "batch pos head_index d_head"]:
        """softmax(q k^T / sqrt(d_head) + mask) v, per head; inputs [batch, pos, heads, d_head]."""
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [batch, heads, pos, d_head]
        bias = alibi_bias(self.alibi_slopes, ctx.q_positions, ctx.k_positions) if self.use_alibi else None
        if not (is_hooked(self.hook_attn_scores) or is_hooked(self.hook_pattern)):
            attn_mask, is_causal = ctx.mask, ctx.mask is None and ctx.causal
            if bias is not None:  # the fused kernel takes one additive float mask
                allowed = ctx.explicit_mask()
                bias = bias.to(q.dtype)
                attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
                is_causal = False
            z = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=1.0 / self.cfg.attn_scale,
                enable_gqa=self.cfg.n_key_value_heads != self.cfg.n_heads,
            )
            return z.transpose(1, 2)
        k, v = self._per_query_head(k, dim=1), self._per_query_head(v, dim=1)
        scores = (q @ k.transpose(-2, -1)) / self.cfg.attn_scale
        if bias is not None:
            scores = scores + bias
        allowed = ctx.explicit_mask()
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype))
        return (pattern @ v).transpose(1, 2)
