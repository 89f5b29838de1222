"""Pure computations behind the Circuits page (no Streamlit): OV copying scores, composition
scores with their random baseline, and one head's QK and OV circuits on a token subset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits.composition import composition_scores
from circuits.qk_ov import copying_scores, ov_circuit, token_qk_circuit
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
