"""One residual block: the lecture's "each layer reads from and writes into the residual stream".

Pre-LN (GPT-2, Llama):                    Post-LN (Vaswani et al. 2017, BERT):
    x_mid  = x + Attn(LN1(x))                 x_mid  = LN1(x + Attn(x))
    x_post = x_mid + MLP(LN2(x_mid))          x_post = LN2(x_mid + MLP(x_mid))
Parallel (GPT-NeoX, GPT-J):  x_post = x + Attn(LN1(x)) + MLP(LN2(x))   (no hook_resid_mid)
Decoder blocks of an encoder-decoder add cross-attention between the two, reading keys and
values from the encoder output.
"""

from __future__ import annotations

from typing import Optional

from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from models.components.attention import Attention, AttentionContext
from models.components.mlp import MLP
from models.components.norms import make_norm
from models.config import ModelConfig


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, cross_attention: bool = False):
        super().__init__()
        self.cfg = cfg
        self.hook_resid_pre = HookPoint()  # [batch, pos, d_model]
        self.ln1 = make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.hook_attn_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, pos, d_model]
        if cross_attention:
            self.ln_cross = make_norm(cfg)
            self.cross_attn = Attention(cfg, layer, cross=True)
            self.hook_cross_attn_out = HookPoint()  # [batch, pos, d_model]
            self.hook_resid_mid_cross = HookPoint()  # [batch, pos, d_model]
        if not cfg.attn_only:
            self.ln2 = make_norm(cfg)
            self.mlp = MLP(cfg)
            self.hook_mlp_out = HookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = HookPoint()  # [batch, pos, d_model]

    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        ctx: AttentionContext,
        encoder_out: Optional[Float[Tensor, "batch src_pos d_model"]] = None,
        cross_ctx: Optional[AttentionContext] = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        x = self.hook_resid_pre(x)
        if self.cfg.norm_position == "post":
            return self._forward_post_ln(x, ctx, encoder_out, cross_ctx)
        attn_out = self.hook_attn_out(self.attn(self.ln1(x), ctx))
        if self.cfg.parallel_attn_mlp and not self.cfg.attn_only:
            return self.hook_resid_post(x + attn_out + self.hook_mlp_out(self.mlp(self.ln2(x))))
        x = self.hook_resid_mid(x + attn_out)
        if encoder_out is not None:
            cross_out = self.hook_cross_attn_out(self.cross_attn(self.ln_cross(x), cross_ctx, kv_input=encoder_out))
            x = self.hook_resid_mid_cross(x + cross_out)
        if not self.cfg.attn_only:
            x = x + self.hook_mlp_out(self.mlp(self.ln2(x)))
        return self.hook_resid_post(x)

    def _forward_post_ln(self, x, ctx, encoder_out, cross_ctx):
        x = self.hook_resid_mid(self.ln1(x + self.hook_attn_out(self.attn(x, ctx))))
        if encoder_out is not None:
            cross_out = self.hook_cross_attn_out(self.cross_attn(x, cross_ctx, kv_input=encoder_out))
            x = self.hook_resid_mid_cross(self.ln_cross(x + cross_out))
        if not self.cfg.attn_only:
            x = self.ln2(x + self.hook_mlp_out(self.mlp(x)))
        return self.hook_resid_post(x)
