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
        self.scale = cfg.embed_scale  # sqrt(d_model) for Vaswani/Marian-style embeddings

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        x = F.embedding(tokens, self.W_E)
        return x * self.scale if self.scale != 1.0 else x


def sinusoidal_table(n_ctx: int, d_model: int, layout: str = "interleaved") -> Float[Tensor, "n_ctx d_model"]:
    """Vaswani et al. 2017: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...).

    ``layout="halves"`` puts all the sines first and all the cosines after (Marian/XLM store
    the same features in that order)."""
    pos = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    sin, cos = torch.sin(pos * inv_freq), torch.cos(pos * inv_freq)[:, : d_model // 2]
    if layout == "halves":
        return torch.cat([sin, cos], dim=-1).float()
    table = torch.zeros(n_ctx, d_model, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = sin, cos
    return table.float()


class PosEmbed(nn.Module):
    """Absolute positions: learned (``W_pos`` is a parameter) or sinusoidal (a fixed buffer)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.offset = cfg.pos_offset  # BART/OPT store positions shifted by 2
        if cfg.positional_embedding_type == "sinusoidal":
            table = sinusoidal_table(cfg.n_ctx, cfg.d_model, cfg.sinusoidal_layout)
            self.register_buffer("W_pos", table.to(cfg.dtype), persistent=False)
        else:
            self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx + cfg.pos_offset, cfg.d_model, dtype=cfg.dtype))

    def forward(self, positions: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(positions + self.offset, self.W_pos)


class TokenTypeEmbed(nn.Module):
    """BERT's segment embeddings: sentence A / sentence B, added to the token embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_token_type = nn.Parameter(torch.empty(cfg.n_token_types, cfg.d_model, dtype=cfg.dtype))

    def forward(self, token_type_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(token_type_ids, self.W_token_type)


class MLMHead(nn.Module):
    """BERT's masked-LM transform before the unembedding: ``LN(act(x W + b))``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from models.components.mlp import ACTIVATIONS
        from models.components.norms import make_norm

        self.W = nn.Parameter(torch.empty(cfg.d_model, cfg.d_model, dtype=cfg.dtype))
        self.b = nn.Parameter(torch.zeros(cfg.d_model, dtype=cfg.dtype))
        self.act = ACTIVATIONS[cfg.act_fn]
        self.ln = make_norm(cfg)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        return self.ln(self.act(x @ self.W + self.b))


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
