"""Hugging Face reference models for parity tests and benchmarks (a helper module, not a test file).

Everything here works offline: models are random-weight, built from a config in code, and the
tokenizer is a byte-level BPE built in code too. Nothing is downloaded from the Hub.

``save_random_hf_model(kind, path, **overrides)``
    Writes a random HF checkpoint (``model.safetensors`` + ``config.json`` + ``tokenizer.json``)
    to ``path``. ``kind`` is one of :data:`KINDS`; ``overrides`` are HF config fields
    (``n_layer=12``, ``vocab_size=50257``, ``use_parallel_residual=False``, ``sliding_window=8``, ...).
    Keyword-only extras: ``seed`` (default 0). Weights are re-drawn from a seeded generator:
    every matrix ~ N(0, initializer_range^2) and every 1-D parameter (norm weights, norm biases,
    linear/attention biases) is its HF init value plus N(0, 0.1^2) noise, so a parity test notices a
    dropped bias or norm weight.

``load_hf_model(path)`` / ``hf_forward(path_or_model, tokens)``
    The saved model in float32 eager attention, and its (logits, hidden_states, attentions).

``boot_bridge(path, compat=False)``
    A ``transformer_lens.model_bridge.TransformerBridge`` on the saved model, booted offline.
    Default: raw HF weights, logits equal HF's (no folding). See ``boot_bridge``'s docstring.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import math  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Union  # noqa: E402

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

PathLike = Union[str, os.PathLike]

SPECIAL_TOKEN = "<|endoftext|>"  # BOS = EOS = UNK, id 0 (GPT-2 style: the tokenizer itself adds nothing)
NOISE_1D = 0.1  # std of the noise added to every 1-D parameter (norm weights/biases, biases)

_LLAMA_BASE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    hidden_act="silu",
)

# kind -> (transformers config class name, model class name, default config fields)
_KINDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_layer=2, n_head=4, n_embd=64, n_positions=128)),
    "neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        dict(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            rotary_pct=0.25,  # -> rope_parameters["partial_rotary_factor"] in transformers 5
            use_parallel_residual=True,
            hidden_act="gelu",
            tie_word_embeddings=False,
        ),
    ),
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(_LLAMA_BASE)),
    "llama_gqa": ("LlamaConfig", "LlamaForCausalLM", dict(_LLAMA_BASE, num_key_value_heads=2)),
    "llama_mqa": ("LlamaConfig", "LlamaForCausalLM", dict(_LLAMA_BASE, num_key_value_heads=1)),
    "llama_tied": ("LlamaConfig", "LlamaForCausalLM", dict(_LLAMA_BASE, tie_word_embeddings=True)),
    # sliding_window stays at HF's default (4096, i.e. never reached); pass sliding_window=8 to exercise it.
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(_LLAMA_BASE, num_key_value_heads=2)),
    "qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(_LLAMA_BASE, num_key_value_heads=2, use_sliding_window=False),  # q/k/v biases, no o bias
    ),
    # ALiBi, an embedding LayerNorm, fused query_key_value like NeoX
    "bloom": ("BloomConfig", "BloomForCausalLM", dict(n_layer=2, n_head=4, hidden_size=64)),
    # encoder-only, post-LN, token types, MLM head (tied decoder + bias)
    "bert": (
        "BertConfig",
        "BertForMaskedLM",
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=128, pad_token_id=1, bos_token_id=None, eos_token_id=None),
    ),
    # BertModel: no MLM head, the model returns the final hidden states (like MiniLM)
    "bert_nohead": (
        "BertConfig",
        "BertModel",
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=128, pad_token_id=1, bos_token_id=None, eos_token_id=None),
    ),
    # encoder-decoder, post-LN, sinusoidal positions (sin | cos halves), final_logits_bias
    "marian": (
        "MarianConfig",
        "MarianMTModel",
        dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128, scale_embedding=True,
             pad_token_id=1, eos_token_id=2, forced_eos_token_id=2, decoder_start_token_id=1, bos_token_id=None),
    ),
    # encoder-decoder, post-LN, learned positions with offset 2, embedding LayerNorm
    "bart": (
        "BartConfig",
        "BartForConditionalGeneration",
        dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128,
             bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2),
    ),
}
SEQ2SEQ_KINDS = ("marian", "bart")
KINDS: tuple[str, ...] = tuple(_KINDS)
# Kinds whose HF model returns logits for a single token sequence (hf_forward works on them).
LM_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in SEQ2SEQ_KINDS and k != "bert_nohead")
DEFAULT_VOCAB_SIZE = 300


# --------------------------------------------------------------------------------------------- tokenizer


def _byte_alphabet() -> list[str]:
    """GPT-2's 256 byte-level characters, most common English characters first."""
    from tokenizers import pre_tokenizers

    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    assert len(alphabet) == 256
    priority = "Ġetaoinshrdlcumwfgypbvkjxqz.,ĊTAISMCBWHEOLNPRDFGJKQUVXYZ0123456789'\"-!?:;()"
    ordered = [c for c in dict.fromkeys(priority) if c in alphabet]
    ordered += sorted(alphabet - set(ordered))
    return ordered


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with exactly ``vocab_size`` tokens.

    id 0 is ``<|endoftext|>`` (BOS, EOS and UNK), ids 1..256 the byte alphabet, then
    ``vocab_size - 257`` synthetic two-character merges (common characters first, e.g. "Ġt", "ee").
    Any text encodes; nothing is trained or downloaded. The tokenizer adds no special tokens
    itself (like GPT-2's): callers prepend BOS.
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    alphabet = _byte_alphabet()
    n_merges = vocab_size - 1 - len(alphabet)
    if n_merges < 0:
        raise ValueError(f"vocab_size must be at least {1 + len(alphabet)} for a byte-level tokenizer, got {vocab_size}")
    if n_merges > len(alphabet) ** 2:
        raise ValueError(f"vocab_size {vocab_size} is too large for two-character merges")
    vocab = {SPECIAL_TOKEN: 0}
    for c in alphabet:
        vocab[c] = len(vocab)
    # Pairs ordered by the sum of the two characters' ranks: merges among common characters first.
    n = len(alphabet)
    pairs = sorted(((i, j) for i in range(n) for j in range(n)), key=lambda ij: (ij[0] + ij[1], ij[0]))
    merges = []
    for i, j in pairs[:n_merges]:
        a, b = alphabet[i], alphabet[j]
        merges.append((a, b))
        vocab[a + b] = len(vocab)
    assert len(vocab) == vocab_size

    tok = Tokenizer(tok_models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([SPECIAL_TOKEN])
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKEN,
        eos_token=SPECIAL_TOKEN,
        unk_token=SPECIAL_TOKEN,
        model_max_length=1 << 30,
    )
    assert len(hf_tok) == vocab_size, (len(hf_tok), vocab_size)
    return hf_tok


# --------------------------------------------------------------------------------------------- models


def _hidden_size(cfg) -> int:
    return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd"))


@torch.no_grad()
def randomize_parameters(model: torch.nn.Module, seed: int = 0, std: float = 0.1, noise_1d: float = NOISE_1D) -> None:
    """Re-draw every parameter from a seeded generator: matrices ~ N(0, std^2); 1-D parameters
    (norm weights/biases, biases) keep their init value (1 or 0) plus N(0, noise_1d^2).
    Tied parameters are visited once."""
    gen = torch.Generator().manual_seed(seed)
    for _, p in model.named_parameters():  # deduplicated: a tied embedding is drawn once
        if p.ndim >= 2:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * std)
        else:
            p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * noise_1d)


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars


def make_random_hf_model(kind: str, seed: int = 0, **overrides):
    """(model, tokenizer) for ``kind``, in memory: a random-weight float32 eager-attention HF model.

    Weights depend on (kind, seed, overrides): two kinds with equal shapes (llama_gqa, mistral)
    still get different weights."""
    import transformers

    _quiet_transformers()

    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    config_cls_name, model_cls_name, defaults = _KINDS[kind]
    fields = dict(defaults)
    fields.update(overrides)
    vocab_size = int(fields.pop("vocab_size", DEFAULT_VOCAB_SIZE))
    tokenizer = build_tokenizer(vocab_size)
    fields.setdefault("bos_token_id", tokenizer.bos_token_id)
    fields.setdefault("eos_token_id", tokenizer.eos_token_id)
    fields.setdefault("pad_token_id", None)

    config_cls = getattr(transformers, config_cls_name)
    model_cls = getattr(transformers, model_cls_name)
    config = config_cls(vocab_size=vocab_size, **fields)
    if "initializer_range" not in overrides:
        # 0.1 at d_model 64 (non-uniform attention, O(1) logits), ~0.03 at d_model 768.
        config.initializer_range = 0.8 / math.sqrt(_hidden_size(config))
    config._attn_implementation = "eager"

    weight_seed = seed * 1_000_003 + zlib.crc32(kind.encode())
    torch.manual_seed(weight_seed)
    model = model_cls(config)
    model.to(torch.float32)
    randomize_parameters(model, seed=weight_seed, std=config.initializer_range)
    model.eval()
    return model, tokenizer


def save_random_hf_model(kind: str, path: PathLike, *, seed: int = 0, **overrides) -> Path:
    """Build a random-weight HF model of ``kind`` (see :data:`KINDS`) and save it, with its
    tokenizer, to ``path`` (created if missing). ``overrides`` are HF config fields. Returns ``path``.

    Deterministic for a given (kind, seed, overrides). Default sizes: 2 layers, d_model 64, 4 heads,
    vocab 300, context 128.
    """
    path = Path(path)
    model, tokenizer = make_random_hf_model(kind, seed=seed, **overrides)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load_hf_model(path: PathLike):
    """The saved model, as the class its config.json names (``architectures[0]``: a causal LM,
    ``BertForMaskedLM``, ``MarianMTModel`` ...), float32, eager attention, eval mode, local files only."""
    import json

    import transformers

    _quiet_transformers()
    arch = json.loads((Path(path) / "config.json").read_text())["architectures"][0]
    model = getattr(transformers, arch).from_pretrained(
        str(path), attn_implementation="eager", dtype=torch.float32, local_files_only=True
    )
    return model.eval()


def load_tokenizer(path: PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _as_batch(tokens) -> Tensor:
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    return tokens.unsqueeze(0) if tokens.ndim == 1 else tokens


@torch.no_grad()
def hf_forward(path_or_model, tokens) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Run the HF model on ``tokens`` ([batch, pos] or [pos] ids).

    ``path_or_model`` is a checkpoint folder (loaded with :func:`load_hf_model`) or an HF model.
    Returns ``(logits [batch, pos, vocab], hidden_states, attentions)``: ``hidden_states`` has
    n_layers + 1 entries [batch, pos, d_model] (embeddings, then each block's output; HF applies
    the final norm to the LAST entry), ``attentions`` n_layers patterns [batch, head, q, k]
    (softmaxed, query heads, i.e. after GQA expansion).
    """
    model = path_or_model if isinstance(path_or_model, torch.nn.Module) else load_hf_model(path_or_model)
    tokens = _as_batch(tokens).to(next(model.parameters()).device)
    out = model(tokens, output_hidden_states=True, output_attentions=True, use_cache=False, return_dict=True)
    return out.logits, tuple(out.hidden_states), tuple(out.attentions)


@torch.no_grad()
def hf_seq2seq_forward(path_or_model, src, tgt, src_mask=None) -> dict[str, Any]:
    """Run an HF encoder-decoder on (src, tgt) ids. Returns a dict with ``logits``,
    ``encoder_hidden_states``, ``decoder_hidden_states`` (n_layers + 1 each), ``encoder_attentions``,
    ``decoder_attentions`` and ``cross_attentions`` (n_layers each, [batch, head, q, k])."""
    model = path_or_model if isinstance(path_or_model, torch.nn.Module) else load_hf_model(path_or_model)
    device = next(model.parameters()).device
    out = model(
        input_ids=_as_batch(src).to(device), decoder_input_ids=_as_batch(tgt).to(device),
        attention_mask=None if src_mask is None else _as_batch(src_mask).to(device),
        output_hidden_states=True, output_attentions=True, use_cache=False, return_dict=True,
    )
    return {k: out[k] for k in ("logits", "encoder_hidden_states", "decoder_hidden_states",
                                 "encoder_attentions", "decoder_attentions", "cross_attentions")}


def random_tokens(vocab_size: int, seq_len: int, batch: int = 1, seed: int = 0, bos: int | None = 0) -> Tensor:
    """[batch, seq_len] seeded random ids in [1, vocab_size), with ``bos`` at position 0 unless None."""
    gen = torch.Generator().manual_seed(seed)
    toks = torch.randint(1, vocab_size, (batch, seq_len), generator=gen)
    if bos is not None:
        toks[:, 0] = bos
    return toks


# --------------------------------------------------------------------------------------------- TransformerLens bridge


def boot_bridge(path_or_model: PathLike | Any, compat: bool = False, *, tokenizer=None, **compat_kwargs):
    """A ``TransformerBridge`` on a saved checkpoint folder (or an already-loaded HF model), offline.

    The HF model is loaded here (:func:`load_hf_model`) and passed as ``hf_model=``, with the folder's
    tokenizer as ``tokenizer=``, so ``boot_transformers`` never touches the Hub (the folder path is
    only used as ``model_name``; TL re-reads the tokenizer from it with ``add_bos_token=True``).
    The bridge wraps the HF model IN PLACE (bridge components replace its submodules), so don't
    reuse a model object after passing it here.

    ``compat=False`` (default): raw HF weights, bridge logits equal HF's. TL-style hook names are
    already there without compatibility mode (``hook_embed``, ``blocks.{l}.hook_resid_pre/mid/post``,
    ``blocks.{l}.attn.hook_q/k/v/z/attn_scores/pattern``, ``blocks.{l}.hook_attn_out/mlp_out``,
    ``ln_final.hook_normalized``, ...). ``blocks.{l}.attn.hook_result`` only fires after
    ``bridge.set_use_attn_result(True)`` (it excludes b_O, as in TL). GQA/MQA: ``hook_k``/``hook_v``
    are [batch, pos, n_kv_heads, d_head]; ``cfg.n_key_value_heads`` is None for plain MHA.
    Parallel-residual NeoX has no ``hook_resid_mid``; rotary models have no ``hook_pos_embed``.
    ``cfg.default_prepend_bos`` is False for neox and qwen2, so pass token ids, not text.

    ``compat=True``: ``bridge.enable_compatibility_mode(no_processing=True, disable_warnings=True)``:
    numerically identical and (for these kinds) no new cache keys. ``compat=True, no_processing=False``
    gives HookedTransformer processing (fold_ln, centering, fold_value_biases): logits shift
    (~0.1 here), log-probs stay equal to ~1e-6.
    """
    from transformer_lens.model_bridge import TransformerBridge

    if isinstance(path_or_model, torch.nn.Module):
        hf_model = path_or_model
        model_name = getattr(hf_model, "name_or_path", None) or getattr(hf_model.config, "_name_or_path", "local")
    else:
        model_name = str(Path(path_or_model).resolve())
        hf_model = load_hf_model(model_name)
        if tokenizer is None:
            tokenizer = load_tokenizer(model_name)
    device = next(hf_model.parameters()).device
    bridge = TransformerBridge.boot_transformers(
        model_name, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=torch.float32
    )
    if compat:
        compat_kwargs.setdefault("no_processing", True)
        compat_kwargs.setdefault("disable_warnings", True)
        bridge.enable_compatibility_mode(**compat_kwargs)
    return bridge
