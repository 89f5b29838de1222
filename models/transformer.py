"""The workbench's transformer: one hookable implementation for every architecture it studies.

Built on TransformerLens's ``HookedRootModule`` + ``HookPoint``, with TransformerLens's hook names
(``hook_embed``, ``blocks.{l}.hook_resid_pre``, ``blocks.{l}.attn.hook_pattern`` ...), so
``run_with_hooks``, ``run_with_cache``, ``ActivationCache`` and ``transformer_lens.patching``
work on it unchanged. Numerics are the checkpoint's own (no weight folding or centering): logits
equal Hugging Face's forward pass on the same weights.

The forward pass is the lecture's:
    x_0     = W_E[tokens] (+ W_pos[positions])        hook_embed, hook_pos_embed
    x_{l+1} = Block_l(x_l)                             blocks.{l}.hook_resid_pre / _post
    logits  = LN_final(x_L) W_U + b_U

Thread safety: the model is shared by every browser session of the app, and hooks are global
state on its modules. ``hooks()`` (which ``run_with_hooks`` and ``run_with_cache`` use) and
``forward`` hold one re-entrant lock per model, so a forward pass never sees another thread's
temporary hooks; concurrent passes on one model run one at a time.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import ActivationCache, FactoredMatrix, HookedRootModule
from transformer_lens.hook_points import HookPoint

from models import tokens as tok
from models.components.attention import AttentionContext, build_mask
from models.components.block import Block
from models.components.embed import Embed, PosEmbed, Unembed
from models.components.norms import make_norm
from models.components.positions import rotary_cos_sin
from models.config import ModelConfig

ReturnType = Optional[Literal["logits", "loss", "both"]]


class Transformer(HookedRootModule):
    def __init__(self, cfg: ModelConfig, tokenizer=None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        if cfg.positional_embedding_type in ("standard", "sinusoidal"):
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        self.blocks = nn.ModuleList([Block(cfg, layer) for layer in range(cfg.n_layers)])
        if cfg.final_norm:
            self.ln_final = make_norm(cfg)
        self.unembed = Unembed(cfg)
        if cfg.tie_word_embeddings:
            self.unembed.weight = self.embed.W_E  # one tensor, as in GPT-2
        self._lock = threading.RLock()
        self.setup()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input: Union[str, list[str], Int[Tensor, "batch pos"], Float[Tensor, "batch pos d_model"]],
        attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
        *,
        return_type: ReturnType = "logits",
        start_at_layer: Optional[int] = None,
        stop_at_layer: Optional[int] = None,
        positions: Optional[Int[Tensor, "batch pos"]] = None,
    ):
        """Logits ``[batch, pos, d_vocab]`` for tokens (or text).

        ``attention_mask`` (1 = real token, 0 = padding) makes padded batches give the same numbers
        as unpadded ones: padding keys are masked and positions count real tokens only.
        ``stop_at_layer=l`` returns the residual stream entering block l; ``start_at_layer=l``
        takes that residual as ``input`` (used to reuse a shared prefix when patching).
        """
        with self._lock:
            if isinstance(input, (str, list)):
                input = self.to_tokens(input)
            tokens = input if start_at_layer is None else None
            batch, seq = input.shape[:2]
            device = input.device
            if positions is None:
                if attention_mask is not None:
                    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
                else:
                    positions = torch.arange(seq, device=device)[None].expand(batch, seq)
            ctx = self._attention_context(positions, attention_mask)

            if start_at_layer is None:
                residual = self.hook_embed(self.embed(tokens))
                if hasattr(self, "pos_embed"):
                    residual = residual + self.hook_pos_embed(self.pos_embed(positions))
                start_at_layer = 0
            else:
                residual = input
            for block in self.blocks[start_at_layer:stop_at_layer]:
                residual = block(residual, ctx)
            if stop_at_layer is not None:
                return residual

            if self.cfg.final_norm:
                residual = self.ln_final(residual)
            logits = self.unembed(residual)
            if return_type == "logits":
                return logits
            if return_type is None:
                return None
            if tokens is None:
                raise ValueError("return_type='loss' needs token input (not start_at_layer)")
            loss = lm_loss(logits, tokens, attention_mask)
            return loss if return_type == "loss" else (logits, loss)

    def _attention_context(self, positions: Tensor, attention_mask: Optional[Tensor]) -> AttentionContext:
        cfg = self.cfg
        seq = positions.shape[1]
        mask = build_mask(
            cfg.attention_mask, seq, seq, attention_mask, cfg.prefix_length, positions.device,
            sliding_window=cfg.sliding_window,
        )
        rot = None
        if cfg.positional_embedding_type == "rotary":
            rot = rotary_cos_sin(positions, cfg.rotary_dim, cfg.rotary_base, cfg.rotary_adjacent_pairs)
        return AttentionContext(positions, positions, mask, cfg.attention_mask == "causal", rot, rot)

    # ------------------------------------------------------------------ hooks, shared safely
    @contextmanager
    def hooks(self, *args, **kwargs):
        with self._lock, super().hooks(*args, **kwargs) as model:
            yield model

    def run_with_cache(self, *model_args, return_cache_object: bool = True, remove_batch_dim: bool = False, **kwargs):
        """``HookedRootModule.run_with_cache`` returning a TransformerLens ``ActivationCache``."""
        out, cache = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if return_cache_object:
            cache = ActivationCache(cache, self, has_batch_dim=not remove_batch_dim)
        return out, cache

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.RLock()

    def to(self, *args, **kwargs):
        model = super().to(*args, **kwargs)
        param = next(model.parameters())
        model.cfg.device, model.cfg.dtype = str(param.device), param.dtype
        return model

    # ------------------------------------------------------------------ tokens
    def to_tokens(self, input: Union[str, list[str]], prepend_bos: Optional[bool] = None) -> Int[Tensor, "batch pos"]:
        return tok.to_tokens(self, input, prepend_bos).to(self.cfg.device or "cpu")

    def to_str_tokens(self, input: Union[str, Tensor, list[int]], prepend_bos: Optional[bool] = None) -> list[str]:
        return tok.to_str_tokens(self, input, prepend_bos)

    def to_string(self, tokens: Union[Tensor, list[int]]) -> Union[str, list[str]]:
        return tok.to_string(self, tokens)

    def to_single_token(self, string: str) -> int:
        return tok.to_single_token(self, string)

    def tokens_to_residual_directions(self, tokens: Union[str, int, Tensor]) -> Float[Tensor, "... d_model"]:
        """Unembedding columns ``W_U[:, token]``: the residual direction each token's logit reads."""
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)
        if isinstance(tokens, int):
            return self.W_U[:, tokens]
        return self.unembed.weight[tokens.to(self.unembed.weight.device)]

    # ------------------------------------------------------------------ weights, TransformerLens-style
    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.embed.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.pos_embed.W_pos

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "d_vocab"]:
        b = self.unembed.b_U
        return b if b is not None else torch.zeros(self.cfg.d_vocab, device=self.W_E.device, dtype=self.W_E.dtype)

    def _stack(self, name: str) -> Tensor:
        return torch.stack([getattr(block.attn, name) for block in self.blocks])

    W_Q = property(lambda self: self._stack("W_Q"), doc="[n_layers, n_heads, d_model, d_head]")
    W_K = property(lambda self: self._stack("W_K"), doc="[n_layers, n_kv_heads, d_model, d_head]")
    W_V = property(lambda self: self._stack("W_V"), doc="[n_layers, n_kv_heads, d_model, d_head]")
    W_O = property(lambda self: self._stack("W_O"), doc="[n_layers, n_heads, d_head, d_model]")
    b_Q = property(lambda self: self._stack("b_Q"))
    b_K = property(lambda self: self._stack("b_K"))
    b_V = property(lambda self: self._stack("b_V"))

    @property
    def QK(self) -> FactoredMatrix:
        """[n_layers, n_heads, d_model, d_model], factored."""
        return FactoredMatrix(self.W_Q, torch.stack([b.attn.QK.B for b in self.blocks]))

    @property
    def OV(self) -> FactoredMatrix:
        return FactoredMatrix(torch.stack([b.attn.OV.A for b in self.blocks]), self.W_O)

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> Tensor:
        """Sum of the output biases (b_O, b_out) written into the residual before ``layer``
        (and before its MLP when ``mlp_input``), as TransformerLens defines it."""
        total = torch.zeros(self.cfg.d_model, device=self.W_E.device, dtype=self.W_E.dtype)
        for i, block in enumerate(self.blocks[: layer + 1] if mlp_input else self.blocks[:layer]):
            if block.attn.b_O is not None:
                total = total + block.attn.b_O
            if include_mlp_biases and (i < layer or not mlp_input) and hasattr(block, "mlp"):
                if block.mlp.b_out is not None:
                    total = total + block.mlp.b_out
        return total

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_weights(self, seed: int = 0, std: float = 0.02) -> "Transformer":
        """GPT-2-style init for natively built models: N(0, std) matrices, unit norm gains, zero biases."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":
                p.fill_(1.0)
            elif leaf.startswith("b"):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
        return self


def lm_loss(logits: Tensor, tokens: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
    """Mean next-token cross-entropy, ignoring targets that are padding."""
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]
    if attention_mask is None:
        return nll.mean()
    keep = attention_mask[:, 1:].to(nll.dtype)
    return (nll * keep).sum() / keep.sum()
