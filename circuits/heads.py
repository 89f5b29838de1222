"""Attention-head detectors: previous-token, duplicate-token, induction and first-token (sink)
scores for every head, measured on attention patterns (Elhage et al. 2021; Olsson et al. 2022).

Each detector is a boolean *detection mask* ``D[b, q, k]`` over (query, key) pairs, built from the
tokens alone (:func:`detection_masks`); a head's score is the attention it puts on the masked keys,
averaged over the queries that have at least one masked key (:func:`pattern_scores`):

    score_h = sum_{b, q in Q} sum_k A_h[b, q, k] D[b, q, k] / |Q|,   Q = {(b, q): D[b, q, :] has a key}

pooled over the whole batch (every such query weighs the same). The masks, with t_i the token at
position i and only real (non-padding) positions:

* ``previous_token``: key q - 1, for every query q > first real position;
* ``duplicate_token``: every earlier key k < q with t_k = t_q, for every query whose token
  occurred before;
* ``induction``: every key k + 1 (k + 1 <= q) such that k < q and t_k = t_q: "the token after an
  earlier occurrence of my token", for every query whose token occurred before. On
  ``[BOS] + R + R`` (R of distinct tokens) the queries are the second copy and the one key of query
  q is q - |R| + 1: the induction score of ``scripts/induction_metrics.py`` and of the model card;
* ``first_token``: the first real key (BOS, the usual attention sink), for every later query
  (position 0 is left out: under a causal mask it can only attend to itself). For cross-attention,
  the first source token, for every target query.

These are TransformerLens's ``head_detector`` patterns (``get_previous_token_head_detection_pattern``
and the duplicate-/induction- ones, which also count every earlier occurrence and keep key q in
the induction pattern when t_{q-1} = t_q). TransformerLens's score (``detect_head``, ``"mul"``)
averages instead over *all* query rows, so that rows with no masked key count as 0:
``normalization="all_queries"`` gives that convention (equal to ``detect_head`` on one prompt).

Which attention is read (``kind``): ``"self"`` for a decoder-only or encoder-only model, and for an
encoder-decoder ``"encoder"`` / ``"decoder"`` self-attention or ``"cross"`` (decoder queries over
encoder keys; only ``first_token`` applies there). Head labels are ``L{l}H{h}``, prefixed ``E``,
``D`` or ``C`` for the encoder, decoder and cross-attention of an encoder-decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

Kind = Literal["self", "encoder", "decoder", "cross"]
Normalization = Literal["targeted_queries", "all_queries"]
DETECTORS = ("previous_token", "duplicate_token", "induction", "first_token")
CROSS_DETECTORS = ("first_token",)
PROBE_SEED = 0

_LABEL_PREFIX = {"self": "", "encoder": "E", "decoder": "D", "cross": "C"}


# ---------------------------------------------------------------------------- attention kinds
def resolve_kind(model, kind: Optional[str] = None) -> str:
    """``kind`` checked against the model; None means ``"self"`` for a single stack and
    ``"decoder"`` for an encoder-decoder."""
    seq2seq = model.cfg.family == "encoder-decoder"
    if kind is None:
        return "decoder" if seq2seq else "self"
    if kind not in _LABEL_PREFIX:
        raise ValueError(f"kind must be one of {tuple(_LABEL_PREFIX)}, not {kind!r}")
    if not seq2seq:
        if kind == "encoder" and model.cfg.family == "encoder":
            return "self"
        if kind != "self":
            raise ValueError(f"a {model.cfg.family} model has only self-attention (kind='self'), not {kind!r}")
    elif kind == "self":
        raise ValueError("an encoder-decoder has three attentions: pass kind='encoder', 'decoder' or 'cross'")
    return kind


def query_stack(model, kind: str) -> nn.Module:
    """The stack whose residual stream the queries read (and the heads write into)."""
    if kind == "self":
        return model
    return model.encoder if kind == "encoder" else model.decoder


def key_stack(model, kind: str) -> nn.Module:
    """The stack whose residual stream the keys and values read (the encoder, for cross-attention)."""
    return model.encoder if kind in ("encoder", "cross") else query_stack(model, kind)


def attention_modules(model, kind: Optional[str] = None) -> list[nn.Module]:
    """The attention module of every layer for ``kind`` (``block.attn`` or ``block.cross_attn``)."""
    kind = resolve_kind(model, kind)
    attr = "cross_attn" if kind == "cross" else "attn"
    return [getattr(block, attr) for block in query_stack(model, kind).blocks]


def attention_hook_name(kind: str, layer: int, hook: str) -> str:
    """``blocks.{layer}.attn.{hook}`` with the stack prefix and ``cross_attn`` for ``"cross"``."""
    prefix = {"self": "", "encoder": "encoder.", "decoder": "decoder.", "cross": "decoder."}[kind]
    attn = "cross_attn" if kind == "cross" else "attn"
    return f"{prefix}blocks.{layer}.{attn}.{hook}"


def head_label(layer: int, head: int, kind: str = "self") -> str:
    return f"{_LABEL_PREFIX[kind]}L{layer}H{head}"


def head_labels(model, kind: Optional[str] = None) -> list[str]:
    """Labels of every head, layer-major (the order of ``scores.flatten()``)."""
    kind = resolve_kind(model, kind)
    modules = attention_modules(model, kind)
    return [head_label(l, h, kind) for l, attn in enumerate(modules) for h in range(attn.cfg.n_heads)]


def parse_head_label(label: str) -> tuple[int, int]:
    """``"L1H3"`` (or ``"DL1H3"``) -> (1, 3)."""
    layer, head = label.upper().lstrip("EDC").removeprefix("L").split("H")
    return int(layer), int(head)


# ---------------------------------------------------------------------------- detection masks
def detection_masks(
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    detectors: Sequence[str] = DETECTORS,
) -> dict[str, Bool[Tensor, "batch query_pos key_pos"]]:
    """The (query, key) pairs each detector looks for, from the tokens alone (module docstring).
    ``attention_mask``: 1 = real token, 0 = padding (left or right); padding is never a query or
    a key."""
    batch, seq = tokens.shape
    device = tokens.device
    real = torch.ones_like(tokens, dtype=torch.bool) if attention_mask is None else attention_mask.bool().to(device)
    pair_real = real[:, :, None] & real[:, None, :]
    q_idx = torch.arange(seq, device=device)[:, None]
    k_idx = torch.arange(seq, device=device)[None, :]
    out = {}
    for name in detectors:
        if name == "previous_token":
            out[name] = (k_idx == q_idx - 1)[None] & pair_real
        elif name in ("duplicate_token", "induction"):
            duplicate = (tokens[:, :, None] == tokens[:, None, :]) & (k_idx < q_idx)[None] & pair_real
            if name == "duplicate_token":
                out[name] = duplicate
            else:  # key j is marked when key j - 1 is an earlier occurrence of the query's token
                shifted = torch.zeros_like(duplicate)
                shifted[:, :, 1:] = duplicate[:, :, :-1]
                out[name] = shifted & pair_real
        elif name == "first_token":
            first = real.long().argmax(dim=1)  # first real position of each row
            out[name] = (k_idx[None] == first[:, None, None]) & (q_idx[None] > first[:, None, None]) & pair_real
        else:
            raise ValueError(f"unknown detector {name!r}; known: {DETECTORS}")
    return out


def cross_detection_masks(
    tgt_real: Bool[Tensor, "batch tgt_pos"],
    src_real: Bool[Tensor, "batch src_pos"],
    detectors: Sequence[str] = CROSS_DETECTORS,
) -> dict[str, Bool[Tensor, "batch tgt_pos src_pos"]]:
    """Cross-attention masks: ``first_token`` marks the first real source token for every real
    target query."""
    out = {}
    for name in detectors:
        if name != "first_token":
            raise ValueError(f"detector {name!r} compares positions of one sequence: not defined for cross-attention")
        first = src_real.long().argmax(dim=1)
        key_is_first = torch.arange(src_real.shape[1], device=src_real.device)[None] == first[:, None]
        out[name] = tgt_real[:, :, None] & key_is_first[:, None, :] & src_real[:, None, :]
    return out


def pattern_scores(
    pattern: Float[Tensor, "batch head_index query_pos key_pos"],
    mask: Bool[Tensor, "batch query_pos key_pos"],
    query_real: Optional[Bool[Tensor, "batch query_pos"]] = None,
    normalization: Normalization = "targeted_queries",
) -> Float[Tensor, "head_index"]:
    """One detector's score per head from attention patterns (module docstring).

    ``"targeted_queries"``: mean over the queries that have a masked key of the attention on the
    masked keys (NaN when no query has one). ``"all_queries"``: TransformerLens's ``"mul"`` score,
    ``sum(A * D) / sum(A)`` over the real query rows."""
    num, den = _score_terms(pattern.float(), mask, query_real, normalization)
    return num / den


def _score_terms(
    pattern: Tensor, mask: Tensor, query_real: Optional[Tensor], normalization: str
) -> tuple[Tensor, Tensor]:
    """(numerator [heads], denominator [] or [heads]) of :func:`pattern_scores`, summed over the batch."""
    hit = torch.einsum("bhqk,bqk->bhq", pattern, mask.to(pattern.dtype))
    if query_real is None:
        query_real = torch.ones(mask.shape[:2], dtype=torch.bool, device=mask.device)
    if normalization == "targeted_queries":
        rows = (mask.any(-1) & query_real).to(pattern.dtype)  # [batch, q]
        return torch.einsum("bhq,bq->h", hit, rows), rows.sum()
    if normalization == "all_queries":
        rows = query_real.to(pattern.dtype)
        return torch.einsum("bhq,bq->h", hit, rows), torch.einsum("bhqk,bq->h", pattern, rows)
    raise ValueError(f"normalization must be 'targeted_queries' or 'all_queries', not {normalization!r}")


# ---------------------------------------------------------------------------- scores of a model
@dataclass
class HeadScores:
    """Detector scores of every head: ``scores[detector]`` is ``[n_layers, n_heads]``."""

    scores: dict[str, Tensor]
    kind: str
    labels: list[str]  # layer-major, as scores[...].flatten()
    n_queries: dict[str, int]  # queries that had a masked key (the denominator), per detector
    normalization: str = "targeted_queries"

    def __getitem__(self, detector: str) -> Tensor:
        return self.scores[detector]

    def heads(self, detector: str, threshold: float, layers: Optional[Sequence[int]] = None) -> list[str]:
        """Labels of the heads scoring at least ``threshold``, best first (optionally only in
        ``layers``)."""
        s = self.scores[detector]
        found = [
            (float(s[l, h]), l, h)
            for l in (range(s.shape[0]) if layers is None else layers)
            for h in range(s.shape[1])
            if s[l, h] >= threshold
        ]
        return [head_label(l, h, self.kind) for _, l, h in sorted(found, key=lambda t: (-t[0], t[1], t[2]))]

    def top(self, detector: str, k: int = 5) -> list[tuple[str, float]]:
        flat = self.scores[detector].flatten().nan_to_num(float("-inf"))
        values, index = flat.topk(min(k, flat.numel()))
        return [(self.labels[i], float(v)) for v, i in zip(values.tolist(), index.tolist())]


@torch.no_grad()
def head_detector_scores(
    model,
    tokens: Int[Tensor, "batch pos"],
    *,
    kind: Optional[Kind] = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src_tokens: Optional[Int[Tensor, "batch src_pos"]] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
    detectors: Optional[Sequence[str]] = None,
    normalization: Normalization = "targeted_queries",
) -> HeadScores:
    """Scores of every head of ``kind`` for each detector on a batch of prompts (module docstring).

    ``tokens`` are what the queries read: the prompt (``"self"``), the source (``"encoder"``) or the
    decoder input (``"decoder"``, ``"cross"``, which also need ``src_tokens``). Patterns are reduced
    inside temporary hooks, one layer at a time, so no pattern of the whole model is stored."""
    kind = resolve_kind(model, kind)
    if detectors is None:
        detectors = CROSS_DETECTORS if kind == "cross" else DETECTORS
    device = model.W_E.device
    tokens = tokens.to(device)
    if tokens.ndim == 1:
        tokens = tokens[None]
    real = (torch.ones_like(tokens) if attention_mask is None else attention_mask.to(device)).bool()
    if kind == "cross":
        if src_tokens is None:
            raise ValueError("cross-attention scores need src_tokens (the encoder input)")
        src_tokens = src_tokens.to(device)
        src_real = (torch.ones_like(src_tokens) if src_attention_mask is None else src_attention_mask.to(device)).bool()
        masks = cross_detection_masks(real, src_real, detectors)
    else:
        masks = detection_masks(tokens, real.long(), detectors)

    modules = attention_modules(model, kind)
    n_layers, n_heads = len(modules), modules[0].cfg.n_heads
    num = {name: torch.zeros(n_layers, n_heads, device=device) for name in masks}
    den = {name: torch.zeros(n_layers, n_heads, device=device) for name in masks}

    def reduce(layer: int):
        def hook(pattern, hook):
            for name, mask in masks.items():
                n, d = _score_terms(pattern.float(), mask, real, normalization)
                num[name][layer] += n
                den[name][layer] += d

        return hook

    hooks = [(attention_hook_name(kind, l, "hook_pattern"), reduce(l)) for l in range(n_layers)]
    with model.hooks(fwd_hooks=hooks):
        if kind == "self":
            model(tokens, attention_mask=attention_mask, return_type=None)
        elif kind == "encoder":
            model.encode(tokens, attention_mask)
        else:
            if src_tokens is None:
                raise ValueError(f"kind={kind!r} runs the decoder, which needs src_tokens (the encoder input)")
            model(
                src_tokens, tokens, attention_mask=src_attention_mask, decoder_attention_mask=attention_mask,
                return_type=None,
            )
    counts = {name: int(mask.any(-1).logical_and(real).sum()) for name, mask in masks.items()}
    scores = {name: (num[name] / den[name]).cpu() for name in masks}
    return HeadScores(scores, kind, head_labels(model, kind), counts, normalization)


# ---------------------------------------------------------------------------- [BOS] + R + R probe
def special_token_ids(model) -> set[int]:
    tokenizer = getattr(model, "tokenizer", None)
    ids = set(getattr(tokenizer, "all_special_ids", None) or []) if tokenizer is not None else set()
    cfg = model.cfg
    configured = (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id, cfg.decoder_start_token_id)
    ids |= {i for i in configured if i is not None}
    return ids


def repeated_random_tokens(
    model,
    length: int,
    n: int = 16,
    *,
    seed: int = PROBE_SEED,
    bos_id: Optional[int] = -1,
    words: Optional[Sequence[int]] = None,
) -> Int[Tensor, "n pos"]:
    """``n`` sequences ``[BOS] + R + R`` (R: ``length`` distinct tokens drawn uniformly from
    ``words``, by default every token except special ones), seeded: same arguments, same tokens.

    ``bos_id=-1`` uses the model's BOS token when it has one (none is prepended otherwise);
    ``bos_id=None`` prepends nothing. On the model's device."""
    if words is None:
        special = special_token_ids(model)
        words = [i for i in range(model.cfg.d_vocab) if i not in special]
    words_t = torch.as_tensor(list(words), dtype=torch.long)
    if length > len(words_t):
        raise ValueError(f"length {length} exceeds the {len(words_t)} tokens available")
    gen = torch.Generator().manual_seed(seed)
    # the first `length` entries of a random permutation are distinct; sampled per row
    r = torch.stack([words_t[torch.randperm(len(words_t), generator=gen)[:length]] for _ in range(n)])
    if bos_id == -1:
        tokenizer = getattr(model, "tokenizer", None)
        bos_id = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        bos_id = model.cfg.bos_token_id if bos_id is None else bos_id
    parts = [r, r] if bos_id is None else [torch.full((n, 1), bos_id, dtype=torch.long), r, r]
    return torch.cat(parts, dim=1).to(model.W_E.device)


def repeated_tokens_scores(
    model,
    length: int = 10,
    n: int = 16,
    *,
    seed: int = PROBE_SEED,
    kind: Optional[Kind] = None,
    src_tokens: Optional[Tensor] = None,
    detectors: Optional[Sequence[str]] = None,
) -> HeadScores:
    """:func:`head_detector_scores` on :func:`repeated_random_tokens` (for ``"decoder"``, the
    probe is the decoder input and ``src_tokens`` the source, broadcast over the batch)."""
    tokens = repeated_random_tokens(model, length, n, seed=seed)
    if src_tokens is not None and src_tokens.shape[0] == 1:
        src_tokens = src_tokens.expand(n, -1)
    return head_detector_scores(model, tokens, kind=kind, src_tokens=src_tokens, detectors=detectors)
