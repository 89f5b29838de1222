"""QK and OV circuits of attention heads, read through the embeddings (Elhage et al. 2021, "A
Mathematical Framework for Transformer Circuits", sections on the QK/OV circuits and copying).

Convention (that of ``models.components.attention``): activations are row vectors and weights
multiply on the right, so head h scores a query row x_q against a key row x_k as
``x_q W_Q^h (W_K^h)^T x_k^T`` and writes ``x_v W_V^h W_O^h`` for a value row x_v. Then

* full QK circuit:        ``W_E W_Q^h (W_K^h)^T W_E^T``    [query token, key token]
* positional QK circuit:  ``W_pos W_Q^h (W_K^h)^T W_pos^T`` [query position, key position]
* full OV circuit:        ``W_E W_V^h W_O^h W_U``          [source token, output token]

where ``W_E`` includes the model's embedding scale (``cfg.embed_scale``). These are the direct
paths of Elhage et al., written for models without norms: weights only, no biases, no norms (in a
model with them, the norm before a head rescales each input vector and LayerNorm also removes its
mean; :func:`qk_circuit` takes any input vectors, e.g. normalised embeddings, for that).
``scaled=True`` divides QK values by ``cfg.attn_scale`` (sqrt(d_head)) to give attention-logit
units.

Grouped-/multi-query attention: query head h reads key/value head ``h // (n_heads / n_kv_heads)``
(:func:`kv_head`). Cross-attention (``kind="cross"``): queries come from the decoder's stream
(the decoder's embedding and positions), keys and values from the encoder's (the encoder's).

Memory: nothing here forms a d_vocab x d_vocab matrix. Token-by-token circuits need a token subset
when ``d_vocab > DENSE_VOCAB_LIMIT``; top-k output tokens are computed a chunk of source tokens at a
time (at most ``max_elements`` logits at once); eigenvalues come from the d_head x d_head product
``W_O (W_U W_E) W_V`` (TransformerLens's ``FactoredMatrix.eigenvalues`` on ``(W_U W_E) W_V`` and
``W_O``), which has the same non-zero eigenvalues as the full OV circuit (eigenvalues of XY and YX
agree), with ``W_U W_E`` formed once per model; singular directions from ``FactoredMatrix.svd``.

Rotary models have no position table: :func:`rotary_qk_by_offset` gives the attention score as a
function of the query-key offset instead (its docstring has the definition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import torch
from jaxtyping import Complex, Float, Int
from torch import Tensor
from transformer_lens import FactoredMatrix

from circuits.heads import (
    Kind,
    attention_hook_name,
    attention_modules,
    head_label,
    key_stack,
    query_stack,
    resolve_kind,
)
from models.components.positions import apply_rotary, rotary_cos_sin

DENSE_VOCAB_LIMIT = 4096  # larger vocabularies need an explicit token subset for token x token circuits
CHUNK_ELEMENTS = 2**22  # logits held at once by the chunked top-k (16 MiB in float32)
MAX_DEFAULT_POSITIONS = 512  # positional circuits default to the first min(n_ctx, this) positions

TokenSpec = Union[None, Int[Tensor, "n"], Sequence[int], Sequence[str]]
HeadSpec = Union[None, int, Sequence[int]]


# ---------------------------------------------------------------------------- helpers
def kv_head(cfg, head: int) -> int:
    """The key/value head that query head ``head`` reads (GQA: consecutive query heads share one)."""
    return head // (cfg.n_heads // cfg.n_key_value_heads)


def per_query_head(w: Tensor, cfg) -> Tensor:
    """``[n_kv_heads, ...]`` -> ``[n_heads, ...]``: row h is the K/V weight query head h uses."""
    index = torch.tensor([kv_head(cfg, h) for h in range(cfg.n_heads)], device=w.device)
    return w.index_select(0, index)


def _attention(model, layer: int, kind: Optional[str]):
    kind = resolve_kind(model, kind)
    modules = attention_modules(model, kind)
    return kind, modules[range(len(modules))[layer]], range(len(modules))[layer]


def _head_index(attn, head: HeadSpec) -> tuple[list[int], bool]:
    """(head indices, whether to drop the head axis of the result)."""
    n = attn.cfg.n_heads
    if head is None:
        return list(range(n)), False
    if isinstance(head, int):
        return [range(n)[head]], True
    return [range(n)[h] for h in head], False


def token_ids(model, tokens: TokenSpec, what: str = "tokens") -> Int[Tensor, "n"]:
    """Token ids on the model's device from ids or single-token strings; None means the whole
    vocabulary, allowed only up to ``DENSE_VOCAB_LIMIT`` tokens."""
    device = model.W_E.device
    if tokens is None:
        if model.cfg.d_vocab > DENSE_VOCAB_LIMIT:
            raise ValueError(
                f"{what}: the vocabulary has {model.cfg.d_vocab} tokens; a token x token circuit over all of "
                f"them would be {model.cfg.d_vocab}^2 values. Pass a subset of token ids (or strings)."
            )
        return torch.arange(model.cfg.d_vocab, device=device)
    if isinstance(tokens, str):
        tokens = [tokens]
    if not isinstance(tokens, Tensor) and len(tokens) and isinstance(tokens[0], str):
        tokens = [model.to_single_token(t) for t in tokens]
    return torch.as_tensor(tokens, dtype=torch.long, device=device).flatten()


def token_labels(model, ids: Tensor) -> list[str]:
    """Readable strings of token ids (the ids themselves for a model without tokenizer)."""
    flat = ids.flatten().tolist()
    if getattr(model, "tokenizer", None) is None:
        return [str(i) for i in flat]
    unique = sorted(set(flat))
    decoded = model.tokenizer.batch_decode([[i] for i in unique], clean_up_tokenization_spaces=False)
    lookup = dict(zip(unique, decoded))
    return [lookup[i] for i in flat]


def _embedding(stack) -> tuple[Tensor, float]:
    """(W_E, scale): the embedding of token t is ``scale * W_E[t]``."""
    return stack.embed.W_E, stack.embed.scale


def _unembedding(model) -> Float[Tensor, "d_model d_vocab"]:
    if not model.cfg.has_logits:
        raise ValueError("this model has no unembedding (an encoder without a head): OV circuits end at W_U")
    return model.W_U


def _positions_table(stack, positions: Optional[Sequence[int]], what: str) -> tuple[Tensor, Tensor]:
    """(positions [n], their embeddings [n, d_model]) from a learned or sinusoidal table."""
    if not hasattr(stack, "pos_embed"):
        pos_type = stack.cfg.positional_embedding_type
        hint = " (use rotary_qk_by_offset)" if pos_type == "rotary" else ""
        raise ValueError(f"{what}: {pos_type!r} positions have no position table{hint}")
    table = stack.pos_embed.W_pos
    n_ctx = table.shape[0] - stack.pos_embed.offset
    if positions is None:
        positions = torch.arange(min(n_ctx, MAX_DEFAULT_POSITIONS), device=table.device)
    positions = torch.as_tensor(positions, dtype=torch.long, device=table.device).flatten()
    if int(positions.max()) >= n_ctx or int(positions.min()) < 0:
        raise ValueError(f"{what}: positions must lie in [0, {n_ctx})")
    return positions, table[positions + stack.pos_embed.offset]


@dataclass
class CircuitMatrix:
    """Values of a circuit between two sets of rows (tokens or positions) for one or more heads:
    ``values [n_heads, n_rows, n_cols]``, or ``[n_rows, n_cols]`` when one head was asked for as an
    int. ``rows`` / ``cols`` hold the token ids or positions."""

    values: Tensor
    rows: Tensor
    cols: Tensor
    row_labels: list[str]
    col_labels: list[str]
    heads: list[str]
    circuit: str  # "QK", "QK positional" or "OV"
    kind: str
    layer: int


# ---------------------------------------------------------------------------- QK
def qk_circuit(
    model,
    layer: int,
    query_inputs: Float[Tensor, "n_q d_model"],
    key_inputs: Float[Tensor, "n_k d_model"],
    *,
    head: HeadSpec = None,
    kind: Optional[Kind] = None,
    scaled: bool = False,
) -> Float[Tensor, "... n_q n_k"]:
    """``x_q W_Q^h (W_K^h)^T x_k^T`` for given residual vectors (no biases, no norms), computed as
    ``(x_q W_Q^h)(x_k W_K^h)^T`` so the memory is that of the result, [heads, n_q, n_k]."""
    _, attn, _ = _attention(model, layer, kind)
    heads, squeeze = _head_index(attn, head)
    W_Q = attn.W_Q[heads]
    W_K = per_query_head(attn.W_K, attn.cfg)[heads]
    q = torch.einsum("qm,hmd->hqd", query_inputs.to(W_Q.dtype), W_Q)
    k = torch.einsum("km,hmd->hkd", key_inputs.to(W_K.dtype), W_K)
    out = q @ k.transpose(-2, -1)
    if scaled:
        out = out / attn.cfg.attn_scale
    return out[0] if squeeze else out


@torch.no_grad()
def token_qk_circuit(
    model,
    layer: int,
    *,
    head: HeadSpec = None,
    query_tokens: TokenSpec = None,
    key_tokens: TokenSpec = None,
    kind: Optional[Kind] = None,
    scaled: bool = False,
) -> CircuitMatrix:
    """Full QK circuit ``W_E[q] W_Q^h (W_K^h)^T W_E[k]^T`` on token subsets: how much a query token
    attends to a key token through the direct path. ``key_tokens`` defaults to ``query_tokens``; both
    default to the whole vocabulary only when it has at most ``DENSE_VOCAB_LIMIT`` tokens."""
    kind, attn, layer = _attention(model, layer, kind)
    q_ids = token_ids(model, query_tokens, "query_tokens")
    k_ids = q_ids if key_tokens is None and query_tokens is not None else token_ids(model, key_tokens, "key_tokens")
    x_q = query_stack(model, kind).embed(q_ids)
    x_k = key_stack(model, kind).embed(k_ids)
    values = qk_circuit(model, layer, x_q, x_k, head=head, kind=kind, scaled=scaled)
    heads, _ = _head_index(attn, head)
    return CircuitMatrix(
        values, q_ids, k_ids, token_labels(model, q_ids), token_labels(model, k_ids),
        [head_label(layer, h, kind) for h in heads], "QK", kind, layer,
    )


@torch.no_grad()
def positional_qk_circuit(
    model,
    layer: int,
    *,
    head: HeadSpec = None,
    query_positions: Optional[Sequence[int]] = None,
    key_positions: Optional[Sequence[int]] = None,
    kind: Optional[Kind] = None,
    scaled: bool = False,
) -> CircuitMatrix:
    """Positional QK circuit ``W_pos[i] W_Q^h (W_K^h)^T W_pos[j]^T`` for learned or sinusoidal
    positions (a previous-token head shows a bright sub-diagonal). Positions default to the first
    ``min(n_ctx, MAX_DEFAULT_POSITIONS)``; ``key_positions`` defaults to ``query_positions``."""
    kind, attn, layer = _attention(model, layer, kind)
    q_pos, x_q = _positions_table(query_stack(model, kind), query_positions, "query positions")
    k_pos, x_k = _positions_table(
        key_stack(model, kind), query_positions if key_positions is None else key_positions, "key positions"
    )
    values = qk_circuit(model, layer, x_q, x_k, head=head, kind=kind, scaled=scaled)
    heads, _ = _head_index(attn, head)
    return CircuitMatrix(
        values, q_pos, k_pos, [str(p) for p in q_pos.tolist()], [str(p) for p in k_pos.tolist()],
        [head_label(layer, h, kind) for h in heads], "QK positional", kind, layer,
    )


@dataclass
class OffsetScores:
    """Attention score as a function of the offset ``query position - key position`` (rotary)."""

    offsets: Tensor  # [n_offsets]
    mean_qk: Tensor  # [n_heads, n_offsets]: rotated mean query . mean key / attn_scale
    observed: Tensor  # [n_heads, n_offsets]: mean of the probe's actual scores at that offset (NaN: none)
    heads: list[str]
    layer: int


@torch.no_grad()
def rotary_qk_by_offset(
    model,
    layer: int,
    tokens: Int[Tensor, "batch pos"],
    *,
    head: HeadSpec = None,
    offsets: Optional[Sequence[int]] = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    kind: Optional[Kind] = None,
) -> OffsetScores:
    """Positional part of a rotary head's QK circuit, measured on a probe (``tokens``).

    Rotary attention scores ``rot(q, m) . rot(k, n)`` depend on positions only through the offset
    ``m - n``. With ``q_bar`` and ``k_bar`` the head's mean query and key (before rotation, over the
    probe's real positions), the score at offset d is

        mean_qk(d) = rot(q_bar, d) . k_bar / attn_scale
                   = mean over probe queries i and keys j of rot(q_i, n + d) . rot(k_j, n) / attn_scale

    for any n (the two lines are equal because the score is bilinear): the average score a probe
    query gives a probe key d positions before it, whatever their content. ``observed(d)`` is the
    mean of the probe's actual scores (``hook_attn_scores``) on the diagonal at offset d, for
    comparison. Offsets default to 0..min(n_ctx, 128)-1 (and the negative ones too for a
    bidirectional stack)."""
    kind, attn, layer = _attention(model, layer, kind)
    if not attn.use_rotary:
        raise ValueError("this attention has no rotary positions: see positional_qk_circuit")
    cfg = attn.cfg
    if kind not in ("self", "encoder"):
        raise ValueError("rotary_qk_by_offset reads the self-attention of a single stack or of an encoder")
    heads, _ = _head_index(attn, head)
    device = model.W_E.device
    tokens = tokens.to(device)
    names = [attention_hook_name(kind, layer, h) for h in ("hook_q", "hook_k", "hook_attn_scores")]
    # an encoder-decoder called with the source alone runs the decoder on its start token only
    _, cache = model.run_with_cache(tokens, attention_mask=attention_mask, names_filter=lambda n: n in names)
    real = (torch.ones_like(tokens) if attention_mask is None else attention_mask.to(device)).bool()
    weights = real.float() / real.sum()
    q_bar = torch.einsum("bphd,bp->hd", cache[names[0]].float(), weights)[heads]
    k_bar = per_query_head(torch.einsum("bphd,bp->hd", cache[names[1]].float(), weights), cfg)[heads]
    if offsets is None:
        span = min(cfg.n_ctx, 128)
        offsets = range(0, span) if cfg.is_causal else range(-span + 1, span)
    offsets = torch.as_tensor(list(offsets), dtype=torch.long, device=device)
    cos, sin = rotary_cos_sin(offsets[None], cfg.rotary_dim, cfg.rotary_base, cfg.rotary_adjacent_pairs)
    q_rot = apply_rotary(q_bar[None, None].expand(1, len(offsets), -1, -1), cos, sin, cfg.rotary_adjacent_pairs)[0]
    mean_qk = torch.einsum("ohd,hd->ho", q_rot, k_bar) / cfg.attn_scale

    scores = cache[names[2]].float()[:, heads]  # [batch, heads, q, k]
    pair_real = real[:, None, :, None] & real[:, None, None, :]
    observed = torch.full((len(heads), len(offsets)), float("nan"), device=device)
    for i, d in enumerate(offsets.tolist()):
        diag = scores.diagonal(offset=-d, dim1=-2, dim2=-1)  # entries (q, q - d)
        ok = pair_real.expand_as(scores).diagonal(offset=-d, dim1=-2, dim2=-1) & diag.isfinite()
        if ok.any():
            observed[:, i] = torch.where(ok, diag, 0).sum((0, 2)) / ok.sum((0, 2)).clamp(min=1)
    return OffsetScores(offsets, mean_qk, observed, [head_label(layer, h, kind) for h in heads], layer)


# ---------------------------------------------------------------------------- OV
def _ov_factors(attn, heads: list[int]) -> tuple[Tensor, Tensor]:
    """(W_V per query head [h, d_model, d_head], W_O [h, d_head, d_model])."""
    return per_query_head(attn.W_V, attn.cfg)[heads], attn.W_O[heads]


@torch.no_grad()
def ov_circuit(
    model,
    layer: int,
    *,
    head: HeadSpec = None,
    src_tokens: TokenSpec = None,
    out_tokens: TokenSpec = None,
    kind: Optional[Kind] = None,
) -> CircuitMatrix:
    """Full OV circuit ``W_E[src] W_V^h W_O^h W_U[:, out]``: the logits a head adds to each output
    token for attending to each source token (direct path). ``out_tokens`` defaults to
    ``src_tokens``; both default to the whole vocabulary only up to ``DENSE_VOCAB_LIMIT`` tokens."""
    kind, attn, layer = _attention(model, layer, kind)
    heads, squeeze = _head_index(attn, head)
    src = token_ids(model, src_tokens, "src_tokens")
    out = src if out_tokens is None and src_tokens is not None else token_ids(model, out_tokens, "out_tokens")
    W_V, W_O = _ov_factors(attn, heads)
    x = key_stack(model, kind).embed(src)
    values = torch.einsum("sm,hmd->hsd", x, W_V) @ (W_O @ _unembedding(model)[:, out])
    return CircuitMatrix(
        values[0] if squeeze else values, src, out, token_labels(model, src), token_labels(model, out),
        [head_label(layer, h, kind) for h in heads], "OV", kind, layer,
    )


@dataclass
class TopTokens:
    """For each source token, the output tokens whose logits one head raises most (full OV circuit)."""

    src: Tensor  # [n_src] token ids
    top: Tensor  # [n_src, k] output token ids, best first
    values: Tensor  # [n_src, k] their OV-circuit logits
    self_rank: Tensor  # [n_src] rank of the source token itself among all outputs (0 = top: copying)
    src_labels: list[str]
    top_labels: list[list[str]]
    head: str

    @property
    def copying_fraction(self) -> float:
        """Share of source tokens whose own token is the head's top output."""
        return float((self.self_rank == 0).float().mean())


@torch.no_grad()
def ov_top_tokens(
    model,
    layer: int,
    head: int,
    *,
    src_tokens: TokenSpec = None,
    k: int = 10,
    kind: Optional[Kind] = None,
    largest: bool = True,
    max_elements: int = CHUNK_ELEMENTS,
) -> TopTokens:
    """Top-k output tokens of the full OV circuit for each source token (every token by default),
    computed ``max(1, max_elements // d_vocab)`` source tokens at a time, so memory stays at
    ``max_elements`` logits whatever the vocabulary. ``largest=False``: the most suppressed."""
    kind, attn, layer = _attention(model, layer, kind)
    if src_tokens is None:  # every token: fine here, one chunk of rows at a time
        src = torch.arange(model.cfg.d_vocab, device=model.W_E.device)
    else:
        src = token_ids(model, src_tokens)
    head = range(attn.cfg.n_heads)[head]
    W_V, W_O = _ov_factors(attn, [head])
    W_U = _unembedding(model)
    readout = W_O[0] @ W_U  # [d_head, d_vocab]
    embed = key_stack(model, kind).embed
    chunk = max(1, max_elements // W_U.shape[1])
    tops, values, ranks = [], [], []
    for start in range(0, len(src), chunk):
        ids = src[start : start + chunk]
        logits = (embed(ids) @ W_V[0]) @ readout  # [chunk, d_vocab]
        v, i = logits.topk(min(k, logits.shape[1]), dim=-1, largest=largest)
        own = logits.gather(1, ids[:, None])
        ranks.append(((logits > own) if largest else (logits < own)).sum(-1))
        tops.append(i)
        values.append(v)
    top = torch.cat(tops)
    labels = token_labels(model, top)
    width = top.shape[1]
    return TopTokens(
        src, top, torch.cat(values), torch.cat(ranks), token_labels(model, src),
        [labels[r * width : (r + 1) * width] for r in range(len(src))], head_label(layer, head, kind),
    )


def full_ov_factored(model, layer: int, *, head: HeadSpec = None, kind: Optional[Kind] = None) -> FactoredMatrix:
    """The full OV circuit ``W_E W_V^h W_O^h W_U`` as a ``FactoredMatrix`` [heads, d_vocab, d_vocab]
    with inner dimension d_head: ``(W_E W_V) (W_O W_U)``, never multiplied out."""
    kind, attn, layer = _attention(model, layer, kind)
    heads, squeeze = _head_index(attn, head)
    W_V, W_O = _ov_factors(attn, heads)
    W_E, scale = _embedding(key_stack(model, kind))
    full = (W_E @ FactoredMatrix(W_V, W_O)) @ _unembedding(model)
    full = full * scale if scale != 1.0 else full
    return full[0] if squeeze else full


def unembed_embed(model, kind: Optional[Kind] = None) -> Float[Tensor, "d_model d_model"]:
    """``W_U W_E`` (times the embedding scale; W_E of the stack the values read): the d_model x
    d_model loop "residual -> logits -> embeddings" that closes the full OV circuit. The full
    circuit ``W_E OV W_U`` and ``OV (W_U W_E)`` have the same non-zero eigenvalues, so copying
    scores need this one product per model rather than one vocabulary-sized product per head."""
    W_E, scale = _embedding(key_stack(model, resolve_kind(model, kind)))
    return (_unembedding(model) @ W_E) * scale


@torch.no_grad()
def ov_eigenvalues(
    model,
    layer: int,
    *,
    head: HeadSpec = None,
    kind: Optional[Kind] = None,
    loop: Optional[Float[Tensor, "d_model d_model"]] = None,
) -> Complex[Tensor, "... d_head"]:
    """The d_head possibly non-zero eigenvalues of the full OV circuit ``W_E W_V W_O W_U``:
    ``FactoredMatrix((W_U W_E) W_V, W_O).eigenvalues``, the eigenvalues of the d_head x d_head
    matrix ``W_O (W_U W_E) W_V``. ``loop``: :func:`unembed_embed`, when already computed."""
    kind, attn, layer = _attention(model, layer, kind)
    heads, squeeze = _head_index(attn, head)
    W_V, W_O = _ov_factors(attn, heads)
    loop = unembed_embed(model, kind) if loop is None else loop
    eigenvalues = FactoredMatrix(loop @ W_V, W_O).eigenvalues
    return eigenvalues[0] if squeeze else eigenvalues


@torch.no_grad()
def copying_scores(
    model, *, kind: Optional[Kind] = None, definition: Literal["elhage", "positive_real"] = "elhage"
) -> Float[Tensor, "n_layers n_heads"]:
    """Copying score of every head from the eigenvalues of its full OV circuit.

    ``"elhage"`` (default): ``Re(sum_i lambda_i) / sum_i |lambda_i|``, Elhage et al.'s summary (and
    TransformerLens's demo, ``eigenvalues.sum(-1).real / eigenvalues.abs().sum(-1)``), in [-1, 1].
    The numerator is the trace of the circuit (real for a real matrix): +1 when every eigenvalue is
    positive real (the head raises the logit of the token it attends to), -1 for a negative copier,
    about 0 for an unrelated map. ``"positive_real"``: ``sum_i max(Re lambda_i, 0) / sum_i
    |lambda_i|``, "the share of positive real part", in [0, 1]; it ignores negative eigenvalues
    rather than subtracting them, so it is at least as large as ``"elhage"`` when that is >= 0."""
    if definition not in ("elhage", "positive_real"):
        raise ValueError(f"definition must be 'elhage' or 'positive_real', not {definition!r}")
    kind = resolve_kind(model, kind)
    loop = unembed_embed(model, kind)
    rows = []
    for layer in range(len(attention_modules(model, kind))):
        ev = ov_eigenvalues(model, layer, kind=kind, loop=loop)  # [heads, d_head]
        positive = ev.sum(-1).real if definition == "elhage" else ev.real.clamp(min=0).sum(-1)
        rows.append(positive / ev.abs().sum(-1))
    return torch.stack(rows).float().cpu()


@dataclass
class SingularDirections:
    """Top singular directions of one head's OV matrix ``W_V W_O = U diag(S) V^T``, read out in
    token space. Reading direction u_i (the head reads ``x . u_i``) through the embedding: the
    tokens whose embeddings point along it; writing direction v_i through the unembedding: the
    tokens whose logits it raises. Signs are fixed so each v_i's largest-magnitude logit is
    positive (u_i flipped with it, which leaves the product unchanged): ``read_top`` tokens lead to
    ``write_top`` tokens, ``read_bottom`` to ``write_bottom``."""

    S: Tensor  # [d_head] every singular value
    U: Tensor  # [d_model, n] reading directions
    V: Tensor  # [d_model, n] writing directions
    read_top: Tensor  # [n, k] token ids with the largest W_E[t] . u_i
    read_bottom: Tensor
    write_top: Tensor  # [n, k] token ids with the largest v_i . W_U[:, t]
    write_bottom: Tensor
    read_top_labels: list[list[str]]
    read_bottom_labels: list[list[str]]
    write_top_labels: list[list[str]]
    write_bottom_labels: list[list[str]]
    head: str


@torch.no_grad()
def ov_singular_directions(
    model, layer: int, head: int, *, n_directions: int = 3, k: int = 10, kind: Optional[Kind] = None
) -> SingularDirections:
    """SVD of one head's OV matrix (``FactoredMatrix.svd``, no d_model x d_model product) and the
    top tokens of its first ``n_directions`` singular directions (class docstring)."""
    kind, attn, layer = _attention(model, layer, kind)
    head = range(attn.cfg.n_heads)[head]
    W_V, W_O = _ov_factors(attn, [head])
    U, S, V = FactoredMatrix(W_V[0], W_O[0]).svd()
    n = min(n_directions, S.shape[-1])
    U, V = U[:, :n], V[:, :n]
    write = V.T @ _unembedding(model)  # [n, d_vocab]
    sign = write.gather(1, write.abs().argmax(1, keepdim=True)).sign()  # [n, 1]
    U, V, write = U * sign.T, V * sign.T, write * sign
    W_E, scale = _embedding(key_stack(model, kind))
    read = (W_E @ U).T * scale  # [n, d_vocab]
    k = min(k, W_E.shape[0])
    picks = [x.topk(k, dim=-1, largest=largest).indices for x in (read, write) for largest in (True, False)]

    def labels(ids):
        flat = token_labels(model, ids)
        return [flat[r * k : (r + 1) * k] for r in range(ids.shape[0])]

    return SingularDirections(S, U, V, *picks, *(labels(p) for p in picks), head_label(layer, head, kind))


# ---------------------------------------------------------------------------- cross-attention
@dataclass
class CrossAttentionQK:
    """One decoder layer's cross-attention on sentence pairs: rows are decoder input positions
    (target), columns encoder positions (source)."""

    scores: Tensor  # [batch, heads, tgt, src] attention logits of the forward pass (hook_attn_scores)
    pattern: Tensor  # [batch, heads, tgt, src] attention probabilities (hook_pattern)
    embedding_qk: Tensor  # [batch, heads, tgt, src] token QK circuit W_E[t] W_QK W_E[s]^T / attn_scale
    src_tokens: Tensor
    tgt_tokens: Tensor
    src_labels: list[list[str]]
    tgt_labels: list[list[str]]
    heads: list[str]
    layer: int

    def peaks(
        self, values: Literal["pattern", "scores", "embedding_qk"] = "pattern", head: Optional[int] = None
    ) -> Tensor:
        """[batch, tgt]: the source position each target row peaks on, for one head or (default)
        the mean over heads (of probabilities, logits or circuit values)."""
        x = getattr(self, values)
        x = x.mean(1) if head is None else x[:, head]
        return x.argmax(-1)


@torch.no_grad()
def cross_attention_qk(
    model,
    src_tokens: Int[Tensor, "batch src_pos"],
    tgt_tokens: Int[Tensor, "batch tgt_pos"],
    layer: int = -1,
    *,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
    tgt_attention_mask: Optional[Int[Tensor, "batch tgt_pos"]] = None,
) -> CrossAttentionQK:
    """Cross-attention QK between the target and source tokens of sentence pairs: the forward
    pass's logits and probabilities (what the head does on these sentences), and the weights-only
    token QK circuit on the same token pairs (what its direct path alone would do), scaled to logits.
    ``tgt_tokens`` is the decoder input (decoder start token first), so the row of target word j is
    position j + 1."""
    kind, attn, layer = _attention(model, layer, "cross")
    device = model.W_E.device
    src, tgt = src_tokens.to(device), tgt_tokens.to(device)
    if src.ndim == 1:
        src, tgt = src[None], tgt[None]
    names = [attention_hook_name(kind, layer, h) for h in ("hook_attn_scores", "hook_pattern")]
    _, cache = model.run_with_cache(
        src, tgt, attention_mask=src_attention_mask, decoder_attention_mask=tgt_attention_mask,
        names_filter=lambda n: n in names,
    )
    W_Q, W_K = attn.W_Q, per_query_head(attn.W_K, attn.cfg)
    q = torch.einsum("btm,hmd->bhtd", model.decoder.embed(tgt), W_Q)
    k = torch.einsum("bsm,hmd->bhsd", model.encoder.embed(src), W_K)
    embedding_qk = q @ k.transpose(-2, -1) / attn.cfg.attn_scale
    return CrossAttentionQK(
        cache[names[0]], cache[names[1]], embedding_qk, src, tgt,
        [token_labels(model, row) for row in src], [token_labels(model, row) for row in tgt],
        [head_label(layer, h, kind) for h in range(attn.cfg.n_heads)], layer,
    )
