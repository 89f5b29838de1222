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
            **_linear_mlp(sd, q, p + "mlp.dense_h_to_4h", p + "mlp.dense_4h_to_h"),
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


def _ln(out: dict, sd: dict, ours: str, theirs: str) -> None:
    out[ours + ".w"], out[ours + ".b"] = _get(sd, theirs + ".weight"), _get(sd, theirs + ".bias")


def _linear_mlp(sd: dict, ours: str, up: str, down: str) -> dict:
    """Two nn.Linear layers (up, then down) -> our ``mlp.W_in/b_in/W_out/b_out``."""
    return {
        ours + "mlp.W_in": _get(sd, up + ".weight").T, ours + "mlp.b_in": _get(sd, up + ".bias"),
        ours + "mlp.W_out": _get(sd, down + ".weight").T, ours + "mlp.b_out": _get(sd, down + ".bias"),
    }


def _separate_qkv(sd: dict, prefix: str, names: tuple[str, str, str], out_name: str, H: int, d: int, m: int) -> dict:
    """q/k/v/out nn.Linear projections (BERT, BART, Marian) -> our attention tensors."""
    q, k, v, o = (prefix + n for n in names + (out_name,))
    return {
        "w_qkv": torch.cat([_linear_heads(_get(sd, x + ".weight"), H, d) for x in (q, k, v)], dim=1),
        "b_qkv": torch.cat([_get(sd, x + ".bias").reshape(H, d) for x in (q, k, v)], dim=0),
        "W_O": _get(sd, o + ".weight").T.reshape(H, d, m),
        "b_O": _get(sd, o + ".bias"),
    }


# --------------------------------------------------------------------------- BERT (encoder-only, post-LN)
@converter("bert")
def bert(hf, sd):
    if getattr(hf, "position_embedding_type", "absolute") not in (None, "absolute"):
        raise ModelLoadError(f"BERT with position_embedding_type={hf.position_embedding_type!r} is not supported (only absolute).")
    has_head = any(k.startswith("cls.predictions.") for k in sd)
    cfg = ModelConfig(
        n_layers=hf.num_hidden_layers, d_model=hf.hidden_size, n_heads=hf.num_attention_heads, d_vocab=hf.vocab_size,
        n_ctx=hf.max_position_embeddings, d_mlp=hf.intermediate_size, act_fn=hf.hidden_act, eps=hf.layer_norm_eps,
        family="encoder", attention_mask="bidirectional", positional_embedding_type="standard",
        normalization_type="LN", norm_position="post", final_norm=False, embed_norm=True,
        n_token_types=hf.type_vocab_size, head="mlm" if has_head else "none",
        tie_word_embeddings=has_head and bool(getattr(hf, "tie_word_embeddings", True)), unembed_bias=has_head,
        default_prepend_bos=False, pad_token_id=hf.pad_token_id,
        original_architecture="BertForMaskedLM" if has_head else "BertModel",
    )
    sd = _strip_prefix(sd, ("bert.",))
    H, d, m = cfg.n_heads, cfg.d_head, cfg.d_model
    out = {
        "embed.W_E": _get(sd, "embeddings.word_embeddings.weight"),
        "pos_embed.W_pos": _get(sd, "embeddings.position_embeddings.weight"),
        "token_type_embed.W_token_type": _get(sd, "embeddings.token_type_embeddings.weight"),
    }
    _ln(out, sd, "ln_embed", "embeddings.LayerNorm")
    for l in range(cfg.n_layers):
        p, q = f"encoder.layer.{l}.", f"blocks.{l}."
        attn = _separate_qkv(sd, p + "attention.", ("self.query", "self.key", "self.value"), "output.dense", H, d, m)
        out |= {q + "attn." + k: v for k, v in attn.items()}
        _ln(out, sd, q + "ln1", p + "attention.output.LayerNorm")
        out |= _linear_mlp(sd, q, p + "intermediate.dense", p + "output.dense")
        _ln(out, sd, q + "ln2", p + "output.LayerNorm")
    if has_head:
        t = "cls.predictions.transform."
        out |= {"mlm_head.W": _get(sd, t + "dense.weight").T, "mlm_head.b": _get(sd, t + "dense.bias")}
        _ln(out, sd, "mlm_head.ln", t + "LayerNorm")
        out["unembed.weight"] = sd.get("cls.predictions.decoder.weight", out["embed.W_E"])
        out["unembed.b_U"] = sd.get("cls.predictions.bias", sd.get("cls.predictions.decoder.bias"))
    return cfg, out


# --------------------------------------------------------------------------- BLOOM (ALiBi)
@converter("bloom")
def bloom(hf, sd):
    if getattr(hf, "apply_residual_connection_post_layernorm", False):
        raise ModelLoadError("BLOOM with apply_residual_connection_post_layernorm=True is not supported.")
    cfg = ModelConfig(
        n_layers=hf.n_layer, d_model=hf.hidden_size, n_heads=hf.n_head, d_vocab=hf.vocab_size, n_ctx=2048,
        d_mlp=4 * hf.hidden_size, act_fn="gelu_new", eps=hf.layer_norm_epsilon, positional_embedding_type="alibi",
        normalization_type="LN", embed_norm=True, tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", True)),
        bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
        original_architecture="BloomForCausalLM",
    )
    sd = _strip_prefix(sd, ("transformer.",))
    H, d, m = cfg.n_heads, cfg.d_head, cfg.d_model
    out = {"embed.W_E": _get(sd, "word_embeddings.weight")}
    _ln(out, sd, "ln_embed", "word_embeddings_layernorm")
    for l in range(cfg.n_layers):
        p, q = f"h.{l}.", f"blocks.{l}."
        # query_key_value rows are ordered [head, (q, k, v), d_head], as in GPT-NeoX
        qkv = _get(sd, p + "self_attention.query_key_value.weight").reshape(H, 3, d, m)
        out |= {
            q + "attn.w_qkv": qkv.permute(3, 1, 0, 2).reshape(m, 3 * H, d),
            q + "attn.b_qkv": _get(sd, p + "self_attention.query_key_value.bias").reshape(H, 3, d).transpose(0, 1).reshape(3 * H, d),
            q + "attn.W_O": _get(sd, p + "self_attention.dense.weight").T.reshape(H, d, m),
            q + "attn.b_O": _get(sd, p + "self_attention.dense.bias"),
            **_linear_mlp(sd, q, p + "mlp.dense_h_to_4h", p + "mlp.dense_4h_to_h"),
        }
        _ln(out, sd, q + "ln1", p + "input_layernorm")
        _ln(out, sd, q + "ln2", p + "post_attention_layernorm")
    _ln(out, sd, "ln_final", "ln_f")
    out["unembed.weight"] = out["embed.W_E"] if cfg.tie_word_embeddings else _get(sd, "lm_head.weight")
    return cfg, out


# --------------------------------------------------------------------------- Marian, BART (encoder-decoder)
@converter("marian", "bart")
def seq2seq(hf, sd):
    marian = hf.model_type == "marian"
    if getattr(hf, "normalize_before", False) or getattr(hf, "add_final_layer_norm", False):
        raise ModelLoadError("pre-LN BART variants (mBART-style normalize_before) are not supported yet.")
    if marian and getattr(hf, "decoder_vocab_size", None) not in (None, hf.vocab_size):
        raise ModelLoadError("Marian models with a separate target vocabulary are not supported yet.")
    if marian and not getattr(hf, "share_encoder_decoder_embeddings", True):
        raise ModelLoadError("Marian models with unshared encoder/decoder embeddings are not supported yet.")
    overrides = {}
    if hf.decoder_attention_heads != hf.encoder_attention_heads:
        overrides["n_heads"] = hf.decoder_attention_heads
    if hf.decoder_ffn_dim != hf.encoder_ffn_dim:
        overrides["d_mlp"] = hf.decoder_ffn_dim
    act = {"swish": "silu"}.get(hf.activation_function, hf.activation_function)
    cfg = ModelConfig(
        n_layers=hf.encoder_layers, n_decoder_layers=hf.decoder_layers, decoder_overrides=overrides,
        d_model=hf.d_model, n_heads=hf.encoder_attention_heads, d_vocab=hf.vocab_size,
        n_ctx=hf.max_position_embeddings, d_mlp=hf.encoder_ffn_dim, act_fn=act, eps=1e-5,
        family="encoder-decoder", attention_mask="bidirectional", normalization_type="LN", norm_position="post",
        final_norm=False, embed_norm=not marian, tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", True)),
        positional_embedding_type="sinusoidal" if marian else "standard", sinusoidal_layout="halves",
        pos_offset=0 if marian else 2, embed_scale=hf.d_model**0.5 if hf.scale_embedding else 1.0,
        unembed_bias=True, default_prepend_bos=False,
        bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id,
        decoder_start_token_id=hf.decoder_start_token_id,
        forced_bos_token_id=getattr(hf, "forced_bos_token_id", None),
        forced_eos_token_id=getattr(hf, "forced_eos_token_id", None),
        original_architecture="MarianMTModel" if marian else "BartForConditionalGeneration",
    )
    sd = _strip_prefix(sd, ("model.",))
    shared = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    if shared is None:
        raise ModelLoadError("the checkpoint has no shared token embedding (model.shared.weight).")
    out = {"encoder.embed.W_E": shared}
    for stack, stack_cfg in (("encoder", cfg.stack_cfg("encoder")), ("decoder", cfg.stack_cfg("decoder"))):
        H, d, m = stack_cfg.n_heads, stack_cfg.d_head, stack_cfg.d_model
        if not marian:
            out[f"{stack}.pos_embed.W_pos"] = _get(sd, f"{stack}.embed_positions.weight")
            _ln(out, sd, f"{stack}.ln_embed", f"{stack}.layernorm_embedding")
        for l in range(stack_cfg.n_layers):
            p, q = f"{stack}.layers.{l}.", f"{stack}.blocks.{l}."
            attn = _separate_qkv(sd, p + "self_attn.", ("q_proj", "k_proj", "v_proj"), "out_proj", H, d, m)
            out |= {q + "attn." + k: v for k, v in attn.items()}
            _ln(out, sd, q + "ln1", p + "self_attn_layer_norm")
            if stack == "decoder":
                cross = _separate_qkv(sd, p + "encoder_attn.", ("q_proj", "k_proj", "v_proj"), "out_proj", H, d, m)
                out |= {q + "cross_attn." + k: v for k, v in cross.items()}
                _ln(out, sd, q + "ln_cross", p + "encoder_attn_layer_norm")
            out |= _linear_mlp(sd, q, p + "fc1", p + "fc2")
            _ln(out, sd, q + "ln2", p + "final_layer_norm")
    out["unembed.weight"] = shared if cfg.tie_word_embeddings else _get(sd, "lm_head.weight")
    out["unembed.b_U"] = _get(sd, "final_logits_bias").reshape(-1)
    return cfg, out
