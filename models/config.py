"""ModelConfig: one dataclass that describes every architecture the workbench runs.

The field names follow TransformerLens's ``HookedTransformerConfig`` where one exists
(``n_layers``, ``d_head``, ``normalization_type``, ``positional_embedding_type`` ...), because
TransformerLens's tools (``ActivationCache``, ``patching``, ``head_detector``) read them from
``model.cfg``. Everything else is a choice of the course documents: positions (sinusoidal,
learned, rotary, ALiBi), norm kind and placement (pre-LN / post-LN), activation (ReLU, GELU,
SwiGLU) and attention kind (multi-, grouped-, multi-query).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch

Positions = Literal["standard", "sinusoidal", "rotary", "alibi", "none"]
Norm = Optional[Literal["LN", "RMS"]]
ActFn = Literal["relu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "silu", "swiglu"]
AttnMask = Literal["causal", "bidirectional", "prefix"]


@dataclass
class ModelConfig:
    # --- sizes ---
    n_layers: int
    d_model: int
    n_heads: int
    d_vocab: int
    n_ctx: int = 1024  # longest sequence the position scheme supports
    d_head: int = -1  # -1: d_model // n_heads, as in Vaswani et al.
    d_mlp: Optional[int] = None  # None: 4 * d_model; ignored when attn_only
    n_key_value_heads: Optional[int] = None  # None: = n_heads (multi-head); 1: multi-query

    # --- architecture choices ---
    family: str = "decoder"  # "decoder" | "encoder" | "encoder-decoder"; see `attention_mask`
    attention_mask: AttnMask = "causal"
    positional_embedding_type: Positions = "standard"  # "standard" = learned absolute (GPT-2)
    normalization_type: Norm = "LN"
    norm_position: Literal["pre", "post"] = "pre"  # pre-LN (GPT-2) or post-LN (Vaswani, BERT)
    act_fn: ActFn = "gelu_new"
    gated_mlp: bool = False  # SwiGLU-style: act(x W_gate) * (x W_in)
    attn_only: bool = False
    parallel_attn_mlp: bool = False  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
    final_norm: bool = True  # a norm before the unembedding (pre-LN models need one)
    tie_word_embeddings: bool = False  # W_U = W_E^T
    attn_bias: bool = True  # b_Q, b_K, b_V
    attn_out_bias: bool = True  # b_O
    mlp_bias: bool = True
    unembed_bias: bool = False
    eps: float = 1e-5
    attn_scale: Optional[float] = None  # None: sqrt(d_head)
    # rotary positions
    rotary_dim: Optional[int] = None  # None: d_head (full rotary); NeoX rotates a fraction
    rotary_base: float = 10000.0
    rotary_adjacent_pairs: bool = False  # GPT-J interleaved pairs vs NeoX/Llama halves
    # embeddings
    n_token_types: int = 0  # BERT's segment (token-type) embeddings; 0 = none
    embed_scale: float = 1.0  # Vaswani/Marian multiply token embeddings by sqrt(d_model)
    embed_norm: bool = False  # a norm right after the embeddings (BERT, BART, BLOOM): ln_embed
    pos_offset: int = 0  # BART stores learned positions shifted by 2
    sinusoidal_layout: Literal["interleaved", "halves"] = "interleaved"  # Vaswani vs Marian (sin | cos)
    # output head: "unembed" (x W_U + b_U), "mlm" (BERT: dense, act, LayerNorm, then unembed),
    # "none" (an encoder without a head: the model returns its final hidden states)
    head: Literal["unembed", "mlm", "none"] = "unembed"
    # encoder-decoder: `n_layers` is the encoder's depth; the decoder may differ
    n_decoder_layers: Optional[int] = None  # None: n_layers
    decoder_overrides: dict = field(default_factory=dict)  # e.g. {"n_heads": 8, "d_mlp": 2048}
    share_embeddings: bool = True  # encoder and decoder read the same W_E (Marian, BART)
    # special tokens used by generate()
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    decoder_start_token_id: Optional[int] = None
    forced_bos_token_id: Optional[int] = None  # BART-style: force this token first
    forced_eos_token_id: Optional[int] = None  # force EOS as the last token when max length is hit
    prefix_length: int = 0  # prefix-LM: the first prefix_length positions see each other
    sliding_window: Optional[int] = None  # Mistral: a query sees at most this many keys back

    # --- bookkeeping read by TransformerLens tools and the app ---
    model_name: str = "custom"
    original_architecture: str = ""
    tokenizer_name: Optional[str] = None
    default_prepend_bos: bool = True
    tokenizer_prepends_bos: bool = False
    device: Optional[str] = None
    dtype: torch.dtype = torch.float32
    n_devices: int = 1
    use_attn_result: bool = False  # TL flag; our attention emits hook_result whenever it is hooked
    use_split_qkv_input: bool = False
    extra: dict = field(default_factory=dict)  # free-form provenance (source checkpoint, card)

    def __post_init__(self):
        if self.d_head == -1:
            if self.d_model % self.n_heads:
                raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
            self.d_head = self.d_model // self.n_heads
        if self.d_mlp is None and not self.attn_only:
            self.d_mlp = 4 * self.d_model
        if self.n_key_value_heads is None:
            self.n_key_value_heads = self.n_heads
        if self.n_heads % self.n_key_value_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be a multiple of n_key_value_heads={self.n_key_value_heads}"
            )
        if self.act_fn == "swiglu":  # SwiGLU = SiLU gate
            self.act_fn, self.gated_mlp = "silu", True
        if self.positional_embedding_type == "rotary" and self.rotary_dim is None:
            self.rotary_dim = self.d_head
        if self.attn_scale is None:
            self.attn_scale = self.d_head**0.5
        if self.family not in ("decoder", "encoder", "encoder-decoder"):
            raise ValueError(f"family must be decoder, encoder or encoder-decoder, not {self.family!r}")
        if self.parallel_attn_mlp and self.norm_position == "post":
            raise ValueError(
                "parallel_attn_mlp needs norm_position='pre' (a parallel block normalises its input once, "
                "before attention and MLP; post-LN has no such input)"
            )
        if self.family == "encoder-decoder" and self.n_decoder_layers is None:
            self.n_decoder_layers = self.n_layers

    def stack_cfg(self, stack: Literal["encoder", "decoder"]) -> "ModelConfig":
        """The config of one stack of an encoder-decoder: a bidirectional encoder, or a causal
        decoder (its own depth and any ``decoder_overrides``)."""
        if stack == "encoder":
            return dataclasses.replace(self, attention_mask="bidirectional")
        changes = dict(self.decoder_overrides)
        if "n_heads" in changes and "d_head" not in changes:
            changes["d_head"] = -1
        if "n_heads" in changes and "n_key_value_heads" not in changes:
            changes["n_key_value_heads"] = None
        if "d_mlp" not in changes:
            changes["d_mlp"] = self.d_mlp
        return dataclasses.replace(self, n_layers=self.n_decoder_layers, attention_mask="causal", **changes)

    # ------------------------------------------------------------------ derived
    @property
    def attention_kind(self) -> str:
        if self.n_key_value_heads == self.n_heads:
            return "multi-head"
        if self.n_key_value_heads == 1:
            return "multi-query"
        return "grouped-query"

    @property
    def has_logits(self) -> bool:
        """False for an encoder without a head: it returns hidden states, not vocabulary logits."""
        return self.head != "none"

    @property
    def is_causal(self) -> bool:
        return self.attention_mask == "causal"

    def summary(self) -> str:
        """One line for pickers: layers, heads, d_model, positions, norm, attention kind."""
        norm = {"LN": "LayerNorm", "RMS": "RMSNorm", None: "no norm"}[self.normalization_type]
        pos = {"standard": "learned"}.get(self.positional_embedding_type, self.positional_embedding_type)
        kv = f" ({self.n_key_value_heads} kv)" if self.n_key_value_heads != self.n_heads else ""
        act = {"relu": "ReLU", "silu": "SiLU", "gelu": "GELU"}.get(self.act_fn, "GELU (tanh)")
        mlp = "attn-only" if self.attn_only else ("SwiGLU" if self.gated_mlp else act)
        layers = f"{self.n_layers}+{self.n_decoder_layers}" if self.family == "encoder-decoder" else str(self.n_layers)
        return (
            f"{self.family}, {layers} layers x {self.n_heads} heads{kv}, d_model {self.d_model}, "
            f"{pos} positions, {self.norm_position}-{norm}, {mlp}, {self.attention_kind}"
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dtype"] = str(self.dtype).removeprefix("torch.")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        if isinstance(d.get("dtype"), str):
            d["dtype"] = getattr(torch, d["dtype"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**d)
