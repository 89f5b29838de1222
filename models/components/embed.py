"""Token embedding, absolute positions and unembedding.

Lecture: ``X = X_E + PE`` with ``X_E = W_E[tokens]``; the unembedding maps the final residual
to logits, ``logits = x W_U + b_U``. With tied embeddings (Press & Wolf 2017) ``W_U = W_E^T``
is the same tensor, as in GPT-2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from models.config import ModelConfig


class Embed(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=cfg.dtype))
        self.scale = 1.0  # sqrt(d_model) for Vaswani/Marian-style embeddings

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        x = F.embedding(tokens, self.W_E)
        return x * self.scale if self.scale != 1.0 else x


def sinusoidal_table(n_ctx: int, d_model: int) -> Float[Tensor, "n_ctx d_model"]:
    """Vaswani et al. 2017: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    pos = torch.arange(n_ctx, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_ctx, d_model)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq)[:, : d_model // 2]
    return table


class PosEmbed(nn.Module):
    """Absolute positions: learned (``W_pos`` is a parameter) or sinusoidal (a fixed buffer)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.offset = 0  # BART/OPT store positions shifted by 2
        if cfg.positional_embedding_type == "sinusoidal":
            self.register_buffer("W_pos", sinusoidal_table(cfg.n_ctx, cfg.d_model).to(cfg.dtype), persistent=False)
        else:
            self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model, dtype=cfg.dtype))

    def forward(self, positions: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(positions + self.offset, self.W_pos)


class Unembed(nn.Module):
    """Stores ``weight [d_vocab, d_model]`` (HF/nanoGPT layout, so tying shares one tensor);
    ``W_U`` is TransformerLens's ``[d_model, d_vocab]`` view of it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model, dtype=cfg.dtype))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab, dtype=cfg.dtype)) if cfg.unembed_bias else None

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.weight.T

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return F.linear(x, self.weight, self.b_U)
