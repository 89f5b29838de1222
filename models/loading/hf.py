"""Hugging Face checkpoint -> (ModelConfig, state dict in our layout), one converter per family.

Our layout (see models/components): ``w_qkv [d_model, n_heads + 2 n_kv, d_head]``,
``W_O [n_heads, d_head, d_model]``, ``W_in/W_gate [d_model, d_mlp]``, ``W_out [d_mlp, d_model]``,
``unembed.weight [d_vocab, d_model]``. HF ``nn.Linear`` weights are ``[out, in]`` and GPT-2's
``Conv1D`` weights ``[in, out]``; each converter says which it reads.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from models.config import ModelConfig
from models.loading.checkpoint import ModelLoadError

Converter = Callable[[object, dict[str, Tensor]], tuple[ModelConfig, dict[str, Tensor]]]
CONVERTERS: dict[str, Converter] = {}


def converter(*model_types: str):
    def register(fn: Converter) -> Converter:
        for t in model_types:
            CONVERTERS[t] = fn
        return fn

    return register


def supported_model_types() -> list[str]:
    return sorted(CONVERTERS)


def _strip_prefix(sd: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    out = {}
    for k, v in sd.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p) :]
                break
        out[k] = v
    return out


def _get(sd: dict[str, Tensor], key: str) -> Tensor:
    try:
        return sd[key]
    except KeyError:
        raise ModelLoadError(f"the checkpoint has no tensor {key!r}; is it a complete, unmodified checkpoint?") from None


def _rope(hf) -> tuple[float, float]:
    """(theta, partial_rotary_factor), refusing scaling schemes we don't implement."""
    params = dict(getattr(hf, "rope_parameters", None) or {})
    legacy = getattr(hf, "rope_scaling", None) or {}
    rope_type = params.get("rope_type") or legacy.get("rope_type") or legacy.get("type") or "default"
    if rope_type != "default":
        raise ModelLoadError(f"RoPE scaling {rope_type!r} is not supported yet (only the default rotary scheme).")
    theta = params.get("rope_theta", getattr(hf, "rope_theta", None) or getattr(hf, "rotary_emb_base", 10000.0))
    partial = params.get("partial_rotary_factor", getattr(hf, "partial_rotary_factor", None) or getattr(hf, "rotary_pct", 1.0))
    return float(theta), float(partial)


def _linear_heads(w: Tensor, n: int, d_head: int) -> Tensor:
    """nn.Linear weight [n * d_head, d_model] -> [d_model, n, d_head]."""
    return w.T.reshape(w.shape[1], n, d_head)


# --------------------------------------------------------------------------- GPT-2
@converter("gpt2")
def gpt2(hf, sd):
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
        raise ModelLoadError("GPT-2 with scale_attn_by_inverse_layer_idx=True is not supported.")
    cfg = ModelConfig(
        n_layers=hf.n_layer, d_model=hf.n_embd, n_heads=hf.n_head, d_vocab=hf.vocab_size, n_ctx=hf.n_positions,
        d_mlp=hf.n_inner or 4 * hf.n_embd, act_fn=hf.activation_function, eps=hf.layer_norm_epsilon,
        positional_embedding_type="standard", normalization_type="LN",
        tie_word_embeddings=True, original_architecture="GPT2LMHeadModel",
    )
    if not getattr(hf, "scale_attn_weights", True):
        cfg.attn_scale = 1.0
    sd = _strip_prefix(sd, ("transformer.",))
    H, d, m = cfg.n_heads, cfg.d_head, cfg.d_model
    out = {"embed.W_E": _get(sd, "wte.weight"), "pos_embed.W_pos": _get(sd, "wpe.weight")}
    for l in range(cfg.n_layers):
        p, q = f"h.{l}.", f"blocks.{l}."
        out |= {
            q + "ln1.w": _get(sd, p + "ln_1.weight"), q + "ln1.b": _get(sd, p + "ln_1.bias"),
            q + "attn.w_qkv": _get(sd, p + "attn.c_attn.weight").reshape(m, 3 * H, d),  # Conv1D [in, out]
            q + "attn.b_qkv": _get(sd, p + "attn.c_attn.bias").reshape(3 * H, d),
            q + "attn.W_O": _get(sd, p + "attn.c_proj.weight").reshape(H, d, m),
            q + "attn.b_O": _get(sd, p + "attn.c_proj.bias"),
            q + "ln2.w": _get(sd, p + "ln_2.weight"), q + "ln2.b": _get(sd, p + "ln_2.bias"),
            q + "mlp.W_in": _get(sd, p + "mlp.c_fc.weight"), q + "mlp.b_in": _get(sd, p + "mlp.c_fc.bias"),
            q + "mlp.W_out": _get(sd, p + "mlp.c_proj.weight"), q + "mlp.b_out": _get(sd, p + "mlp.c_proj.bias"),
        }
    out |= {"ln_final.w": _get(sd, "ln_f.weight"), "ln_final.b": _get(sd, "ln_f.bias")}
    out["unembed.weight"] = sd.get("lm_head.weight", out["embed.W_E"])
    return cfg, out


# --------------------------------------------------------------------------- GPT-NeoX / Pythia
@converter("gpt_neox")
def gpt_neox(hf, sd):
    theta, partial = _rope(hf)
    head_dim = hf.hidden_size // hf.num_attention_heads
    cfg = ModelConfig(
        n_layers=hf.num_hidden_layers, d_model=hf.hidden_size, n_heads=hf.num_attention_heads,
        d_vocab=hf.vocab_size, n_ctx=hf.max_position_embeddings, d_mlp=hf.intermediate_size,
        act_fn=hf.hidden_act, eps=hf.layer_norm_eps, positional_embedding_type="rotary",
        rotary_dim=int(head_dim * partial), rotary_base=theta, normalization_type="LN",
        parallel_attn_mlp=hf.use_parallel_residual, tie_word_embeddings=bool(hf.tie_word_embeddings),
        attn_bias=getattr(hf, "attention_bias", True), attn_out_bias=getattr(hf, "attention_bias", True),
        original_architecture="GPTNeoXForCausalLM",
    )
    sd = _strip_prefix(sd, ("gpt_neox.",))
    H, d, m = cfg.n_heads, cfg.d_head, cfg.d_model
    out = {"embed.W_E": _get(sd, "embed_in.weight")}
    for l in range(cfg.n_layers):
        p, q = f"layers.{l}.", f"blocks.{l}."
        # query_key_value rows are ordered [head, (q, k, v), d_head]
        qkv = _get(sd, p + "attention.query_key_value.weight").reshape(H, 3, d, m)
        out |= {
            q + "ln1.w": _get(sd, p + "input_layernorm.weight"), q + "ln1.b": _get(sd, p + "input_layernorm.bias"),
            q + "attn.w_qkv": qkv.permute(3, 1, 0, 2).reshape(m, 3 * H, d),
            q + "attn.W_O": _get(sd, p + "attention.dense.weight").T.reshape(H, d, m),
            q + "ln2.w": _get(sd, p + "post_attention_layernorm.weight"),
            q + "ln2.b": _get(sd, p + "post_attention_layernorm.bias"),
            q + "mlp.W_in": _get(sd, p + "mlp.dense_h_to_4h.weight").T, q + "mlp.b_in": _get(sd, p + "mlp.dense_h_to_4h.bias"),
            q + "mlp.W_out": _get(sd, p + "mlp.dense_4h_to_h.weight").T, q + "mlp.b_out": _get(sd, p + "mlp.dense_4h_to_h.bias"),
        }
        if cfg.attn_bias:
            out[q + "attn.b_qkv"] = _get(sd, p + "attention.query_key_value.bias").reshape(H, 3, d).transpose(0, 1).reshape(3 * H, d)
            out[q + "attn.b_O"] = _get(sd, p + "attention.dense.bias")
    out |= {"ln_final.w": _get(sd, "final_layer_norm.weight"), "ln_final.b": _get(sd, "final_layer_norm.bias")}
    out["unembed.weight"] = out["embed.W_E"] if cfg.tie_word_embeddings else _get(sd, "embed_out.weight")
    return cfg, out


# --------------------------------------------------------------------------- Llama, Mistral, Qwen2
@converter("llama", "mistral", "qwen2")
def llama(hf, sd):
    theta, partial = _rope(hf)
    H, K = hf.num_attention_heads, getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads
    d = getattr(hf, "head_dim", None) or hf.hidden_size // H
    qkv_bias = hf.model_type == "qwen2" or bool(getattr(hf, "attention_bias", False))
    window = None
    if hf.model_type == "mistral" or getattr(hf, "use_sliding_window", False):
        window = getattr(hf, "sliding_window", None)
        layer_types = set(getattr(hf, "layer_types", None) or [])
        if window and len(layer_types) > 1:
            raise ModelLoadError("checkpoints mixing sliding-window and full-attention layers are not supported yet.")
    cfg = ModelConfig(
        n_layers=hf.num_hidden_layers, d_model=hf.hidden_size, n_heads=H, n_key_value_heads=K, d_head=d,
        d_vocab=hf.vocab_size, n_ctx=hf.max_position_embeddings, d_mlp=hf.intermediate_size,
        act_fn=hf.hidden_act, gated_mlp=True, eps=hf.rms_norm_eps, positional_embedding_type="rotary",
        rotary_dim=int(d * partial), rotary_base=theta, normalization_type="RMS",
        tie_word_embeddings=bool(hf.tie_word_embeddings), attn_bias=qkv_bias,
        attn_out_bias=bool(getattr(hf, "attention_bias", False)), mlp_bias=bool(getattr(hf, "mlp_bias", False)),
        sliding_window=window, original_architecture=type(hf).__name__.replace("Config", "ForCausalLM"),
    )
    sd = _strip_prefix(sd, ("model.",))
    m = cfg.d_model
    out = {"embed.W_E": _get(sd, "embed_tokens.weight")}
    for l in range(cfg.n_layers):
        p, q = f"layers.{l}.", f"blocks.{l}."
        a = p + "self_attn."
        out |= {
            q + "ln1.w": _get(sd, p + "input_layernorm.weight"),
            q + "attn.w_qkv": torch.cat([
                _linear_heads(_get(sd, a + "q_proj.weight"), H, d),
                _linear_heads(_get(sd, a + "k_proj.weight"), K, d),
                _linear_heads(_get(sd, a + "v_proj.weight"), K, d),
            ], dim=1),
            q + "attn.W_O": _get(sd, a + "o_proj.weight").T.reshape(H, d, m),
            q + "ln2.w": _get(sd, p + "post_attention_layernorm.weight"),
            q + "mlp.W_gate": _get(sd, p + "mlp.gate_proj.weight").T,
            q + "mlp.W_in": _get(sd, p + "mlp.up_proj.weight").T,
            q + "mlp.W_out": _get(sd, p + "mlp.down_proj.weight").T,
        }
        if cfg.attn_bias:
            out[q + "attn.b_qkv"] = torch.cat(
                [_get(sd, a + f"{x}_proj.bias").reshape(-1, d) for x in "qkv"], dim=0
            )
        if cfg.attn_out_bias:
            out[q + "attn.b_O"] = _get(sd, a + "o_proj.bias")
        if cfg.mlp_bias:
            out[q + "mlp.b_in"] = _get(sd, p + "mlp.up_proj.bias")
            out[q + "mlp.b_out"] = _get(sd, p + "mlp.down_proj.bias")
    out["ln_final.w"] = _get(sd, "norm.weight")
    out["unembed.weight"] = out["embed.W_E"] if cfg.tie_word_embeddings else sd.get("lm_head.weight", out["embed.W_E"])
    return cfg, out
