"""Relative position schemes that act inside attention rather than on the residual stream.

* Rotary (Su et al. 2021, RoFormer): rotate each pair of query/key features by an angle
  ``pos * base^(-2i/d_rot)``, so ``q_m . k_n`` depends on ``m - n`` only. NeoX/Llama pair
  feature ``i`` with ``i + d_rot/2`` ("halves"); GPT-J pairs adjacent features.
* ALiBi (Press et al. 2022): add ``-slope_h * |query_pos - key_pos|`` to the attention scores
  of head ``h``, with geometric slopes ``2^(-8h/n_heads)``.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor


def rotary_cos_sin(
    positions: Int[Tensor, "batch pos"], rotary_dim: int, base: float, adjacent_pairs: bool = False
) -> tuple[Float[Tensor, "batch pos 1 rotary_dim"], Float[Tensor, "batch pos 1 rotary_dim"]]:
    """cos and sin of the rotation angles, in float32, shaped to broadcast over heads."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, device=positions.device).float() / rotary_dim))
    angles = positions.float()[..., None] * inv_freq  # [batch, pos, rotary_dim/2]
    if adjacent_pairs:
        angles = angles.repeat_interleave(2, dim=-1)
    else:
        angles = torch.cat([angles, angles], dim=-1)
    return angles.cos()[:, :, None, :], angles.sin()[:, :, None, :]


def apply_rotary(
    x: Float[Tensor, "batch pos head_index d_head"], cos: Tensor, sin: Tensor, adjacent_pairs: bool = False
) -> Float[Tensor, "batch pos head_index d_head"]:
    rd = cos.shape[-1]
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    if adjacent_pairs:
        x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
        rotated = torch.stack([-x2, x1], dim=-1).flatten(-2)
    else:
        x1, x2 = x_rot.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
    x_rot = (x_rot.float() * cos + rotated.float() * sin).to(x.dtype)
    return torch.cat([x_rot, x_pass], dim=-1) if x_pass.shape[-1] else x_rot


def alibi_slopes(n_heads: int) -> Float[Tensor, "n_heads"]:
    """Press et al.'s geometric slopes; for a head count that is not a power of two, the
    closest power of two's slopes followed by every other slope of the next one (as BLOOM)."""
    closest = 2 ** math.floor(math.log2(n_heads))
    base = 2.0 ** (-8.0 / closest)
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest < n_heads:
        extra_base = 2.0 ** (-4.0 / closest)
        slopes += [extra_base ** (2 * i + 1) for i in range(n_heads - closest)]
    return torch.tensor(slopes)


def alibi_bias(
    slopes: Float[Tensor, "n_heads"], q_positions: Int[Tensor, "batch q"], k_positions: Int[Tensor, "batch k"]
) -> Float[Tensor, "batch n_heads q k"]:
    """``-slope_h * |key_pos - query_pos|``: zero on the diagonal, more negative with distance.

    Under a causal mask (keys at or before the query) this is Press et al.'s
    ``slope_h * (key_pos - query_pos)``; under a bidirectional or prefix mask it penalises keys
    after the query as much as keys before it (the symmetric form of MosaicBERT), instead of
    rewarding them."""
    dist = (k_positions[:, None, :] - q_positions[:, :, None]).abs().float()  # [batch, q, k]
    return -slopes.to(dist.device)[None, :, None, None] * dist[:, None]
