"""Layer normalisation (Ba et al. 2016) and RMS normalisation (Zhang & Sennrich 2019).

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * w + b
    RMSNorm(x)   =  x            / sqrt(mean(x^2) + eps) * w

Both expose the denominator as ``hook_scale`` [batch, pos, 1] (TransformerLens's name), which
is what makes a norm *linear* once the scale is frozen: direct logit attribution and the
residual decomposition divide each component by this cached scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from models.config import ModelConfig


def is_hooked(hook: HookPoint) -> bool:
    """True when some forward or backward hook is attached (so the value must be materialised)."""
    return bool(hook._forward_hooks or hook._backward_hooks)


class LayerNorm(nn.Module):
    def __init__(self, cfg: ModelConfig, d: int | None = None):
        super().__init__()
        self.eps = cfg.eps
        d = d or cfg.d_model
        self.w = nn.Parameter(torch.ones(d, dtype=cfg.dtype))
        self.b = nn.Parameter(torch.zeros(d, dtype=cfg.dtype))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not is_hooked(self.hook_scale):  # fused kernel; same numbers to float tolerance
            return self.hook_normalized(F.layer_norm(x, self.w.shape, self.w, self.b, self.eps))
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        scale = self.hook_scale((var + self.eps).sqrt())
        return self.hook_normalized(torch.addcmul(self.b, (x - mean) / scale, self.w))


class RMSNorm(nn.Module):
    def __init__(self, cfg: ModelConfig, d: int | None = None):
        super().__init__()
        self.eps = cfg.eps
        self.w = nn.Parameter(torch.ones(d or cfg.d_model, dtype=cfg.dtype))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model]

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        # Statistics in float32 even for half-precision models, and x * rsqrt(.) rather than
        # x / sqrt(.), as Llama does: the same rounding as the reference keeps logits within ~4e-5.
        x32 = x.float()
        inv_scale = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if is_hooked(self.hook_scale):
            inv_scale = 1.0 / self.hook_scale(1.0 / inv_scale)
        return self.hook_normalized(self.w * (x32 * inv_scale).to(x.dtype))


def make_norm(cfg: ModelConfig, d: int | None = None) -> nn.Module:
    if cfg.normalization_type == "LN":
        return LayerNorm(cfg, d)
    if cfg.normalization_type == "RMS":
        return RMSNorm(cfg, d)
    return nn.Identity()
