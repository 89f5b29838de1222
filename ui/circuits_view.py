"""Pure computations behind the Circuits page (no Streamlit): OV copying scores, composition
scores with their random baseline, one head's QK and OV circuits on a token subset, the
positional part of its QK circuit (position table, rotary offsets or ALiBi bias) and the
singular directions of its OV matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from circuits.composition import composition_scores
from circuits.qk_ov import (
    copying_scores,
    ov_circuit,
    ov_singular_directions,
    positional_qk_circuit,
    rotary_qk_by_offset,
    token_qk_circuit,
)
from circuits.heads import attention_modules, query_stack, resolve_kind
from ui.patterns import PromptError

MAX_SUBSET = 40


def causal(model, kind: Optional[str]) -> bool:
    """Whether the queries of ``kind`` only see earlier keys (decoder self-attention)."""
    kind = resolve_kind(model, kind)
    if model.cfg.family == "encoder-decoder":
        return kind == "decoder"
    return model.cfg.attention_mask == "causal"


def _check(model) -> None:
    """The OV side (copying, OV circuits, SVD) ends at the unembedding."""
    if not model.cfg.has_logits:
        raise PromptError("no_logits")


def kind_shape(model, kind: Optional[str] = None) -> tuple[int, int]:
    """(layers, heads) of one kind of attention."""
    modules = attention_modules(model, kind)
    return len(modules), modules[0].cfg.n_heads


def _check_head(model, layer: int, head: int, kind: str) -> None:
    n_layers, n_heads = kind_shape(model, kind)
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise PromptError("head_out_of_range", n_layers=n_layers - 1, n_heads=n_heads - 1)


def copying_view(model, kind: Optional[str] = None) -> np.ndarray:
    """Elhage et al.'s eigenvalue copying score of every head, ``[n_layers, n_heads]``."""
    _check(model)
    return copying_scores(model, kind=kind).float().cpu().numpy()


@dataclass(frozen=True)
class CompositionView:
    matrix: np.ndarray  # [writer heads, reader heads], NaN where the writer is not earlier
    writer_labels: list[str]
    reader_labels: list[str]
    baseline_mean: float
    baseline_std: float
    top: list[tuple[str, str, float]]


def composition_view(model, mode: str, kind: Optional[str] = None) -> CompositionView:
    """Q-, K- or V-composition between every earlier and later head, with the random baseline;
    ``kind``: the reading heads (their writers: ``circuits.composition.composition_scores``)."""
    scores = composition_scores(model, mode, kind=kind)
    flat = torch.where(scores.valid, scores.scores, torch.full_like(scores.scores, float("nan"))).flatten(0, 1)
    flat = flat.flatten(1, 2)
    return CompositionView(flat.float().cpu().numpy(), scores.writer_labels, scores.reader_labels,
                           float(scores.baseline.mean), float(scores.baseline.std), scores.top(8))


@dataclass(frozen=True)
class HeadCircuits:
    query_labels: list[str]  # QK rows
    key_labels: list[str]  # QK columns, and OV rows (the tokens attended to)
    output_labels: list[str]  # OV columns
    qk: np.ndarray  # [query token, key token]
    ov: Optional[np.ndarray]  # [source token, output token]; None: no unembedding (an encoder without a head)

    @property
    def labels(self) -> list[str]:
        return self.query_labels


def subset_ids(model, text: str) -> list[int]:
    """The distinct tokens of ``text`` (no special tokens), in order, at most ``MAX_SUBSET``."""
    if not isinstance(text, str) or not text.strip():
        raise PromptError("empty_prompt")
    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    out = list(dict.fromkeys(i for i in ids if i not in special))
    if not out:
        raise PromptError("no_tokens")
    return out[:MAX_SUBSET]


def head_circuits_view(model, layer: int, head: int, text: str, kind: Optional[str] = None,
                       target_text: str = "") -> HeadCircuits:
    """Full QK circuit (query x key tokens) and OV circuit (attended x output tokens) of one head,
    through the embedding and unembedding, on the distinct tokens of ``text``.

    Encoder-decoders: ``text`` is the source (encoder) text and ``target_text`` the target
    (decoder) text. Encoder heads read source tokens, decoder heads target tokens, and
    cross-attention heads have target queries and source keys; the OV circuit maps the tokens
    a head attends to onto the target tokens' logits."""
    kind = resolve_kind(model, kind)
    _check_head(model, layer, head, kind)
    src = subset_ids(model, text)
    seq2seq = model.cfg.family == "encoder-decoder"
    tgt = subset_ids(model, target_text) if seq2seq else src  # the decoder's words: also the OV outputs
    queries = src if kind in ("self", "encoder") else tgt
    keys = src if kind in ("self", "encoder", "cross") else tgt
    outputs = tgt
    with torch.no_grad():
        qk = token_qk_circuit(model, layer, head=head, query_tokens=queries, key_tokens=keys, kind=kind, scaled=True)
        ov = (ov_circuit(model, layer, head=head, src_tokens=keys, out_tokens=outputs, kind=kind)
              if model.cfg.has_logits else None)
    return HeadCircuits(qk.row_labels, qk.col_labels, ov.col_labels if ov is not None else [],
                        qk.values.float().cpu().numpy(), None if ov is None else ov.values.float().cpu().numpy())


# ----------------------------------------------------------------------------- positions and SVD


def positional_kind(model, layer: int = 0, kind: Optional[str] = None) -> str:
    """How the heads of ``layer`` see positions: ``table`` (learned or sinusoidal embeddings added
    to the residual stream), ``rotary``, ``alibi`` or ``none``."""
    kind = resolve_kind(model, kind)
    attn = attention_modules(model, kind)[layer]
    if getattr(attn, "use_rotary", False):
        return "rotary"
    if getattr(attn, "use_alibi", False):
        return "alibi"
    if hasattr(query_stack(model, kind), "pos_embed"):
        return "table"
    return "none"


@dataclass(frozen=True)
class PositionalView:
    kind: str  # table | rotary | alibi | none
    positions: list[int]  # table: the positions (rows and columns); rotary/alibi: the offsets
    values: Optional[np.ndarray]  # table: [query, key] (NaN: a key after the query of a causal model);
    # rotary: mean_qk [offset]; alibi: bias [offset]; none: None
    observed: Optional[np.ndarray] = None  # rotary: the probe's own mean score at each offset (NaN: none)
    slope: Optional[float] = None  # alibi: the head's slope m (bias = -m * offset)


def positional_view(model, layer: int, head: int, n_positions: int = 32, probe: str = "",
                    kind: Optional[str] = None) -> PositionalView:
    """The positional part of one head's QK circuit, by how the model encodes positions:
    ``table``: ``circuits.qk_ov.positional_qk_circuit`` (scaled to attention logits) on the first
    ``n_positions`` positions; ``rotary``: ``rotary_qk_by_offset`` on the ``probe`` text for
    offsets ``0..n_positions-1``; ``alibi``: the bias ``-m * offset`` the head adds; ``none``:
    nothing (no positional parameters)."""
    cfg = model.cfg
    kind = resolve_kind(model, kind)
    _check_head(model, layer, head, kind)
    n = max(1, min(int(n_positions), int(cfg.n_ctx)))
    attention = kind
    kind = positional_kind(model, layer, attention)
    if kind == "none":
        return PositionalView(kind, [], None)
    if kind == "table":
        with torch.no_grad():
            circuit = positional_qk_circuit(model, layer, head=head, query_positions=range(n), scaled=True,
                                            kind=attention)
        values = circuit.values.float()
        if causal(model, attention):  # a query never sees later keys
            values = values.masked_fill(torch.ones_like(values).triu(1).bool(), float("nan"))
        return PositionalView(kind, circuit.rows.tolist(), values.cpu().numpy())
    if kind == "rotary":
        from ui.prompts import prompt_tokens

        tokens = prompt_tokens(model, probe, "probe")
        with torch.no_grad():
            scores = rotary_qk_by_offset(model, layer, tokens, head=[head], offsets=range(n))
        return PositionalView(kind, scores.offsets.tolist(), scores.mean_qk[0].float().cpu().numpy(),
                              observed=scores.observed[0].float().cpu().numpy())
    from models.components.positions import alibi_bias

    slopes = attention_modules(model, attention)[layer].alibi_slopes
    offsets = torch.arange(n, device=slopes.device)
    bias = alibi_bias(slopes, offsets[None], torch.zeros(1, 1, dtype=torch.long, device=slopes.device))[0, head, :, 0]
    return PositionalView(kind, offsets.tolist(), bias.float().cpu().numpy(), slope=float(slopes[head]))


def shown_token(token: str) -> str:
    """A token in quotes with its whitespace visible, for tables."""
    return "'" + token.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t") + "'"


@dataclass(frozen=True)
class SvdView:
    singular_values: np.ndarray  # [d_head]: every singular value of W_V W_O
    read_top: list[list[str]]  # [direction][k]: tokens whose embeddings the direction reads most
    write_top: list[list[str]]  # tokens whose logits it raises most
    read_bottom: list[list[str]]  # the other end (read with the opposite sign)
    write_bottom: list[list[str]]  # tokens whose logits it lowers most


def svd_view(model, layer: int, head: int, n_directions: int = 3, k: int = 8,
             kind: Optional[str] = None) -> SvdView:
    """The top singular directions of one head's OV matrix with the tokens each reads and writes
    (``circuits.qk_ov.ov_singular_directions``)."""
    _check(model)
    _check_head(model, layer, head, kind)
    svd = ov_singular_directions(model, layer, head, n_directions=n_directions, k=k, kind=kind)
    return SvdView(svd.S.float().cpu().numpy(), svd.read_top_labels, svd.write_top_labels, svd.read_bottom_labels,
                   svd.write_bottom_labels)
