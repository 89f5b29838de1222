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
from models.components.attention import AttentionContext, KVCache, build_mask
from models.components.block import Block
from models.components.embed import Embed, MLMHead, PosEmbed, TokenTypeEmbed, Unembed
from models.components.norms import make_norm
from models.components.positions import rotary_cos_sin
from models.config import ModelConfig

ReturnType = Optional[Literal["logits", "loss", "both"]]


class StackParts:
    """Embeddings, blocks and final norm of one stack of blocks (a mixin, so a decoder-only or
    encoder-only model keeps TransformerLens's root-level names, ``hook_embed``, ``blocks.{l}``,
    while an encoder-decoder holds two of them as ``encoder`` and ``decoder``)."""

    def _build_stack(self, cfg: ModelConfig, cross_attention: bool = False) -> None:
        self.embed = Embed(cfg)
        self.hook_embed = HookPoint()  # [batch, pos, d_model]
        if cfg.positional_embedding_type in ("standard", "sinusoidal"):
            self.pos_embed = PosEmbed(cfg)
            self.hook_pos_embed = HookPoint()  # [batch, pos, d_model]
        if cfg.n_token_types:
            self.token_type_embed = TokenTypeEmbed(cfg)
            self.hook_token_type_embed = HookPoint()  # [batch, pos, d_model]
        if cfg.embed_norm:
            self.ln_embed = make_norm(cfg)
        self.blocks = nn.ModuleList([Block(cfg, layer, cross_attention) for layer in range(cfg.n_layers)])
        if cfg.final_norm:
            self.ln_final = make_norm(cfg)

    def embed_input(
        self, tokens: Int[Tensor, "batch pos"], positions: Int[Tensor, "batch pos"], token_type_ids: Optional[Tensor] = None
    ) -> Float[Tensor, "batch pos d_model"]:
        """x_0 = W_E[tokens] (+ W_pos[positions]) (+ W_type[token types]), then LN_embed if any."""
        residual = self.hook_embed(self.embed(tokens))
        if hasattr(self, "pos_embed"):
            residual = residual + self.hook_pos_embed(self.pos_embed(positions))
        if hasattr(self, "token_type_embed"):
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(tokens)
            residual = residual + self.hook_token_type_embed(self.token_type_embed(token_type_ids))
        if hasattr(self, "ln_embed"):
            residual = self.ln_embed(residual)
        return residual

    def run_blocks(self, residual: Tensor, ctx: AttentionContext, start: Optional[int] = None, stop: Optional[int] = None,
                   encoder_out: Optional[Tensor] = None, cross_ctx: Optional[AttentionContext] = None) -> Tensor:
        for block in self.blocks[start:stop]:
            residual = block(residual, ctx, encoder_out, cross_ctx)
        return residual

    def final_norm(self, residual: Tensor) -> Tensor:
        return self.ln_final(residual) if hasattr(self, "ln_final") else residual

    def self_attention_context(
        self, positions: Tensor, key_positions: Tensor, attention_mask: Optional[Tensor], cache: Optional[KVCache] = None
    ) -> AttentionContext:
        """Mask and rotary angles shared by every self-attention layer of this stack for one pass.
        ``positions`` are the queries' (the new tokens), ``key_positions`` every key's (past + new)."""
        cfg = self.cfg
        q_len, k_len = positions.shape[1], key_positions.shape[1]
        mask = build_mask(
            cfg.attention_mask, q_len, k_len, attention_mask, cfg.prefix_length, positions.device,
            sliding_window=cfg.sliding_window,
        )
        rot = None
        if cfg.positional_embedding_type == "rotary":
            rot = rotary_cos_sin(positions, cfg.rotary_dim, cfg.rotary_base, cfg.rotary_adjacent_pairs)
        return AttentionContext(positions, key_positions, mask, cfg.attention_mask == "causal", rot, rot, cache=cache)


class Stack(StackParts, nn.Module):
    """One stack of an encoder-decoder model (``model.encoder`` / ``model.decoder``)."""

    def __init__(self, cfg: ModelConfig, cross_attention: bool = False):
        super().__init__()
        self.cfg = cfg
        self._build_stack(cfg, cross_attention)


def _positions(seq: int, attention_mask: Optional[Tensor], past: int, batch: int, device) -> tuple[Tensor, Tensor]:
    """(query positions [batch, seq], key positions [batch, past + seq]).

    With a padding mask (1 = token, 0 = padding) positions count real tokens only, so a
    left- or right-padded sequence gets the same positions as the unpadded one."""
    if attention_mask is not None:
        keys = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    else:
        keys = torch.arange(past + seq, device=device)[None].expand(batch, past + seq)
    return keys[:, keys.shape[1] - seq :], keys


class Transformer(StackParts, HookedRootModule):
    def __init__(self, cfg: ModelConfig, tokenizer=None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        if cfg.family == "encoder-decoder":
            self.encoder = Stack(cfg.stack_cfg("encoder"))
            self.decoder = Stack(cfg.stack_cfg("decoder"), cross_attention=True)
            if cfg.share_embeddings:
                self.decoder.embed.W_E = self.encoder.embed.W_E
        else:
            self._build_stack(cfg)
        if cfg.head == "mlm":
            self.mlm_head = MLMHead(cfg)
        if cfg.head != "none":
            self.unembed = Unembed(cfg)
            if cfg.tie_word_embeddings:
                self.unembed.weight = self.input_embed.W_E  # one tensor, as in GPT-2
        self._lock = threading.RLock()
        self.setup()

    @property
    def input_embed(self) -> Embed:
        """The token embedding the unembedding may be tied to (the decoder's, for seq2seq)."""
        return self.decoder.embed if self.cfg.family == "encoder-decoder" else self.embed

    def stacks(self) -> dict[str, nn.Module]:
        """Hook-name prefix -> stack: ``{"": model}``, or ``{"encoder.": ..., "decoder.": ...}``."""
        if self.cfg.family == "encoder-decoder":
            return {"encoder.": self.encoder, "decoder.": self.decoder}
        return {"": self}

    def stacks_list(self) -> list[nn.Module]:
        return list(self.stacks().values())

    def tied_parameters(self) -> dict[str, str]:
        """Parameter names that alias another one (dropped when saving, re-tied when loading)."""
        tied = {}
        if self.cfg.family == "encoder-decoder" and self.cfg.share_embeddings:
            tied["decoder.embed.W_E"] = "encoder.embed.W_E"
        if self.cfg.head != "none" and self.cfg.tie_word_embeddings:
            source = "decoder.embed.W_E" if self.cfg.family == "encoder-decoder" else "embed.W_E"
            tied["unembed.weight"] = tied.get(source, source)
        return tied

    def tie_weights(self) -> None:
        for alias, source in self.tied_parameters().items():
            owner, _, leaf = alias.rpartition(".")
            setattr(self.get_submodule(owner), leaf, self.get_parameter(source))

    # ------------------------------------------------------------------ forward
    def forward(self, input, *args, **kwargs):
        """Decoder-only and encoder-only: ``model(tokens, attention_mask=None, ...)``
        (see :meth:`forward_single`). Encoder-decoder: ``model(src_tokens, tgt_tokens, ...)``
        (see :meth:`forward_seq2seq`)."""
        if self.cfg.family == "encoder-decoder":
            return self.forward_seq2seq(input, *args, **kwargs)
        return self.forward_single(input, *args, **kwargs)

    def forward_single(
        self,
        input: Union[str, list[str], Int[Tensor, "batch pos"], Float[Tensor, "batch pos d_model"]],
        attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
        *,
        return_type: ReturnType = "logits",
        start_at_layer: Optional[int] = None,
        stop_at_layer: Optional[int] = None,
        positions: Optional[Int[Tensor, "batch pos"]] = None,
        token_type_ids: Optional[Int[Tensor, "batch pos"]] = None,
        past_key_values: Optional[KVCache] = None,
    ):
        """Logits ``[batch, pos, d_vocab]`` for tokens (or text); for an encoder with no head
        (``cfg.head == "none"``) the final hidden states ``[batch, pos, d_model]``.

        ``attention_mask`` (1 = real token, 0 = padding) makes padded batches give the same numbers
        as unpadded ones: padding keys are masked and positions count real tokens only. With
        ``past_key_values`` (a :class:`KVCache`, filled in place) ``input`` holds only the new
        tokens and ``attention_mask`` covers past + new.
        ``stop_at_layer=l`` returns the residual stream entering block l; ``start_at_layer=l``
        takes that residual as ``input`` (used to reuse a shared prefix when patching).
        """
        with self._lock:
            if isinstance(input, (str, list)):
                input, attention_mask = tok.to_tokens_and_mask(self, input)
                input, attention_mask = input.to(self.cfg.device or "cpu"), attention_mask.to(self.cfg.device or "cpu")
                if bool(attention_mask.all()):
                    attention_mask = None
            tokens = input if start_at_layer is None else None
            batch, seq = input.shape[:2]
            past = len(past_key_values) if past_key_values is not None else 0
            q_pos, k_pos = _positions(seq, attention_mask, past, batch, input.device)
            if positions is not None:
                q_pos = k_pos = positions
            ctx = self.self_attention_context(q_pos, k_pos, attention_mask, past_key_values)

            if start_at_layer is None:
                residual = self.embed_input(tokens, q_pos, token_type_ids)
            else:
                residual = input
            residual = self.run_blocks(residual, ctx, start_at_layer, stop_at_layer)
            if stop_at_layer is not None:
                return residual
            logits = self.head_output(self.final_norm(residual))
            if return_type == "logits":
                return logits
            if return_type is None:
                return None
            if tokens is None:
                raise ValueError("return_type='loss' needs token input (not start_at_layer)")
            loss = lm_loss(logits, tokens, attention_mask)
            return loss if return_type == "loss" else (logits, loss)

    def head_output(self, residual: Float[Tensor, "batch pos d_model"]) -> Tensor:
        """Logits from the final residual (after the final norm): x W_U + b_U, through BERT's
        MLM transform first when there is one; the residual itself for a head-less encoder."""
        if self.cfg.head == "none":
            return residual
        if self.cfg.head == "mlm":
            residual = self.mlm_head(residual)
        return self.unembed(residual)

    def encode(self, src: Int[Tensor, "batch src_pos"], attention_mask: Optional[Tensor] = None) -> Float[Tensor, "batch src_pos d_model"]:
        """The encoder's output (after its final norm, if any): what cross-attention reads."""
        with self._lock:
            q_pos, k_pos = _positions(src.shape[1], attention_mask, 0, src.shape[0], src.device)
            ctx = self.encoder.self_attention_context(q_pos, k_pos, attention_mask)
            residual = self.encoder.embed_input(src, q_pos)
            return self.encoder.final_norm(self.encoder.run_blocks(residual, ctx))

    def forward_seq2seq(
        self,
        src: Union[str, list[str], Int[Tensor, "batch src_pos"]],
        tgt: Union[str, list[str], Int[Tensor, "batch tgt_pos"], None] = None,
        *,
        attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
        decoder_attention_mask: Optional[Int[Tensor, "batch tgt_pos"]] = None,
        return_type: ReturnType = "logits",
        encoder_out: Optional[Tensor] = None,
        past_key_values: Optional[KVCache] = None,
    ):
        """Encoder-decoder (Vaswani et al. 2017): the encoder reads ``src`` bidirectionally; the
        decoder reads ``tgt`` causally and, in each block, cross-attends to the encoder output.
        Returns the decoder's logits ``[batch, tgt_pos, d_vocab]``. ``tgt`` defaults to the
        decoder start token alone. ``attention_mask`` is the source padding mask."""
        with self._lock:
            device = self.cfg.device or "cpu"
            if isinstance(src, (str, list)):
                src, attention_mask = (t.to(device) for t in tok.to_tokens_and_mask(self, src))
            if tgt is None:
                tgt = torch.full((src.shape[0], 1), self._decoder_start(), dtype=torch.long, device=src.device)
            elif isinstance(tgt, (str, list)):
                tgt, decoder_attention_mask = (t.to(device) for t in tok.to_target_tokens_and_mask(self, tgt))
            if encoder_out is None:
                encoder_out = self.encode(src, attention_mask)
            batch, seq = tgt.shape
            past = len(past_key_values) if past_key_values is not None else 0
            q_pos, k_pos = _positions(seq, decoder_attention_mask, past, batch, tgt.device)
            ctx = self.decoder.self_attention_context(q_pos, k_pos, decoder_attention_mask, past_key_values)
            src_pos = torch.arange(encoder_out.shape[1], device=tgt.device)[None].expand(batch, -1)
            cross_mask = build_mask("bidirectional", seq, encoder_out.shape[1], attention_mask, device=tgt.device)
            cross_ctx = AttentionContext(q_pos, src_pos, cross_mask, False, cache=past_key_values)
            residual = self.decoder.embed_input(tgt, q_pos)
            residual = self.decoder.run_blocks(residual, ctx, encoder_out=encoder_out, cross_ctx=cross_ctx)
            logits = self.head_output(self.decoder.final_norm(residual))
            if return_type == "logits":
                return logits
            if return_type is None:
                return None
            loss = lm_loss(logits, tgt, decoder_attention_mask)
            return loss if return_type == "loss" else (logits, loss)

    def _decoder_start(self) -> int:
        cfg = self.cfg
        for candidate in (cfg.decoder_start_token_id, cfg.bos_token_id, cfg.pad_token_id):
            if candidate is not None:
                return candidate
        raise ValueError("the model's config has no decoder_start_token_id: pass tgt tokens explicitly.")

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        input: Union[str, list[str], Int[Tensor, "batch pos"]],
        max_new_tokens: int = 20,
        *,
        attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
        use_cache: bool = True,
        eos_token_id: Optional[int] = -1,
        pad_token_id: Optional[int] = None,
        decoder_start_token_id: Optional[int] = None,
    ) -> Int[Tensor, "batch out_pos"]:
        """Greedy decoding with a key/value cache; stops when every sequence has produced EOS.

        Decoder-only: returns the prompt followed by the new tokens (HF's layout). Encoder-decoder:
        ``input`` is the source and the result is the decoder sequence, starting with the decoder
        start token. Sequences that finished early are filled with the pad token. ``eos_token_id``
        defaults to the config's (None: never stop early); ``use_cache=False`` recomputes the
        whole sequence every step (same tokens, slower: a check on the cache).
        """
        from models.generation import greedy_generate

        return greedy_generate(
            self, input, max_new_tokens, attention_mask=attention_mask, use_cache=use_cache,
            eos_token_id=eos_token_id, pad_token_id=pad_token_id, decoder_start_token_id=decoder_start_token_id,
        )

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
        return self.stacks_list()[0].embed.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.stacks_list()[0].pos_embed.W_pos

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.unembed.W_U

    @property
    def b_U(self) -> Float[Tensor, "d_vocab"]:
        b = self.unembed.b_U
        return b if b is not None else torch.zeros(self.cfg.d_vocab, device=self.W_E.device, dtype=self.W_E.dtype)

    def _stack(self, name: str) -> Tensor:
        if self.cfg.family == "encoder-decoder":
            raise AttributeError(f"an encoder-decoder has one {name} per stack: use model.encoder / model.decoder blocks")
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
