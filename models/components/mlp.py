"""The position-wise feed-forward network (lecture: FFN = max(0, x W_1 + b_1) W_2 + b_2).

    pre  = x W_in + b_in                       (hook_pre)
    post = act(pre)                            (hook_post; act = ReLU, GELU, ...)
    out  = post W_out + b_out

Gated variant (SwiGLU, Shazeer 2020; Llama): ``post = SiLU(x W_gate) * (x W_in)`` with
``hook_pre`` on the gate's pre-activation and ``hook_pre_linear`` on ``x W_in``, as in
TransformerLens. Each row of ``W_out`` is one neuron's write direction into the residual stream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from models.config import ModelConfig


def gelu_tanh(x: Tensor) -> Tensor:
    """GPT-2's "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as one fused kernel
    (HF evaluates the formula op by op; the two agree to float rounding)."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "silu": F.silu,
}


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, m = cfg.d_model, cfg.d_mlp
        self.act = ACTIVATIONS[cfg.act_fn]
        self.W_in = nn.Parameter(torch.empty(d, m, dtype=cfg.dtype))
        self.W_gate = nn.Parameter(torch.empty(d, m, dtype=cfg.dtype)) if cfg.gated_mlp else None
        self.W_out = nn.Parameter(torch.empty(m, d, dtype=cfg.dtype))
        self.b_in = nn.Parameter(torch.zeros(m, dtype=cfg.dtype)) if cfg.mlp_bias else None
        self.b_out = nn.Parameter(torch.zeros(d, dtype=cfg.dtype)) if cfg.mlp_bias else None
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        if cfg.gated_mlp:
            self.hook_pre_linear = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]

    def _linear(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return torch.addmm(b, x.flatten(0, -2), w).view(*x.shape[:-1], w.shape[1]) if b is not None else x @ w

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if self.W_gate is not None:
            gate = self.hook_pre(x @ self.W_gate)
            post = self.hook_post(self.act(gate) * self.hook_pre_linear(self._linear(x, self.W_in, self.b_in)))
        else:
            post = self.hook_post(self.act(self.hook_pre(self._linear(x, self.W_in, self.b_in))))
        return self._linear(post, self.W_out, self.b_out)
