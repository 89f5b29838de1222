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
from ui.patterns import PromptError

MAX_SUBSET = 40


def _check(model) -> None:
    if model.cfg.family != "decoder":
        raise PromptError("decoder_only")
    if not model.cfg.has_logits:
        raise PromptError("no_logits")


def copying_view(model) -> np.ndarray:
    """Elhage et al.'s eigenvalue copying score of every head, ``[n_layers, n_heads]``."""
    _check(model)
    return copying_scores(model).float().cpu().numpy()


@dataclass(frozen=True)
class CompositionView:
    matrix: np.ndarray  # [writer heads, reader heads], NaN where the writer is not earlier
    writer_labels: list[str]
    reader_labels: list[str]
    baseline_mean: float
    baseline_std: float
    top: list[tuple[str, str, float]]


def composition_view(model, mode: str) -> CompositionView:
    """Q-, K- or V-composition between every earlier and later head, with the random baseline."""
    _check(model)
    scores = composition_scores(model, mode)
    flat = torch.where(scores.valid, scores.scores, torch.full_like(scores.scores, float("nan"))).flatten(0, 1)
    flat = flat.flatten(1, 2)
    return CompositionView(flat.float().cpu().numpy(), scores.writer_labels, scores.reader_labels,
                           float(scores.baseline.mean), float(scores.baseline.std), scores.top(8))


@dataclass(frozen=True)
class HeadCircuits:
    labels: list[str]
    qk: np.ndarray  # [query token, key token]
    ov: np.ndarray  # [source token, output token]


def subset_ids(model, text: str) -> list[int]:
    """The distinct tokens of ``text`` (no BOS), in order, at most ``MAX_SUBSET``."""
    if not text or not text.strip():
        raise PromptError("empty_prompt")
    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    out = list(dict.fromkeys(i for i in ids if i not in special))
    if not out:
        raise PromptError("empty_prompt")
    return out[:MAX_SUBSET]


def head_circuits_view(model, layer: int, head: int, text: str) -> HeadCircuits:
    """Full QK circuit (query x key tokens) and OV circuit (source x output tokens) of one head,
    through the embedding and unembedding, on the tokens of ``text``."""
    _check(model)
    if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
        raise PromptError("head_out_of_range", n_layers=model.cfg.n_layers - 1, n_heads=model.cfg.n_heads - 1)
    ids = subset_ids(model, text)
    with torch.no_grad():
        qk = token_qk_circuit(model, layer, head=head, query_tokens=ids, key_tokens=ids, scaled=True)
        ov = ov_circuit(model, layer, head=head, src_tokens=ids, out_tokens=ids)
    return HeadCircuits(qk.row_labels, qk.values.float().cpu().numpy(), ov.values.float().cpu().numpy())


# ----------------------------------------------------------------------------- positions and SVD


def positional_kind(model, layer: int = 0) -> str:
    """How the heads of ``layer`` see positions: ``table`` (learned or sinusoidal embeddings added
    to the residual stream), ``rotary``, ``alibi`` or ``none``."""
    attn = model.blocks[layer].attn
    if getattr(attn, "use_rotary", False):
        return "rotary"
    if getattr(attn, "use_alibi", False):
        return "alibi"
    if hasattr(model, "pos_embed"):
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


def positional_view(model, layer: int, head: int, n_positions: int = 32, probe: str = "") -> PositionalView:
    """The positional part of one head's QK circuit, by how the model encodes positions:
    ``table``: ``circuits.qk_ov.positional_qk_circuit`` (scaled to attention logits) on the first
    ``n_positions`` positions; ``rotary``: ``rotary_qk_by_offset`` on the ``probe`` text for
    offsets ``0..n_positions-1``; ``alibi``: the bias ``-m * offset`` the head adds; ``none``:
    nothing (no positional parameters)."""
    _check(model)
    cfg = model.cfg
    if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
        raise PromptError("head_out_of_range", n_layers=cfg.n_layers - 1, n_heads=cfg.n_heads - 1)
    n = max(1, min(int(n_positions), int(cfg.n_ctx)))
    kind = positional_kind(model, layer)
    if kind == "none":
        return PositionalView(kind, [], None)
    if kind == "table":
        with torch.no_grad():
            circuit = positional_qk_circuit(model, layer, head=head, query_positions=range(n), scaled=True)
        values = circuit.values.float()
        if cfg.attention_mask == "causal":  # a query never sees later keys
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

    slopes = model.blocks[layer].attn.alibi_slopes
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


def svd_view(model, layer: int, head: int, n_directions: int = 3, k: int = 8) -> SvdView:
    """The top singular directions of one head's OV matrix with the tokens each reads and writes
    (``circuits.qk_ov.ov_singular_directions``)."""
    _check(model)
    cfg = model.cfg
    if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
        raise PromptError("head_out_of_range", n_layers=cfg.n_layers - 1, n_heads=cfg.n_heads - 1)
    svd = ov_singular_directions(model, layer, head, n_directions=n_directions, k=k)
    return SvdView(svd.S.float().cpu().numpy(), svd.read_top_labels, svd.write_top_labels, svd.read_bottom_labels,
                   svd.write_bottom_labels)
