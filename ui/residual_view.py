"""Pure computations behind the Residual-stream page (no Streamlit): the logit lens and direct
logit attribution of ``circuits.residual``, reduced to the arrays and labels the figures show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from circuits.neurons import neuron_direct_logit_attribution
from circuits.residual import direct_logit_attribution, logit_lens
from ui.interventions import _tokens, has_mlp, single_token
from ui.patterns import PromptError


@dataclass(frozen=True)
class LensView:
    layer_labels: list[str]
    position_labels: list[str]
    top_tokens: list[list[str]]  # [layer][position]
    top_probs: np.ndarray  # [layer, position]
    target: Optional[str]
    target_probs: Optional[np.ndarray]  # [layer, position]
    target_rank_last: Optional[list[int]]  # [layer], at the last position
    first_top1_last: Optional[str]  # layer label where the target first becomes top-1 (last position)


def _check(model) -> None:
    if model.cfg.family == "encoder":
        raise PromptError("decoder_only")
    if not model.cfg.has_logits:
        raise PromptError("no_logits")


def _inputs(model, prompt: str, decoder_text: str = "") -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(tokens the residual stream is read on, source tokens or None). A decoder reads ``prompt``;
    an encoder-decoder reads ``prompt`` as its source and ``decoder_text`` (the translation so
    far, after the start token; may be empty) in its decoder, whose residual stream is read."""
    if model.cfg.family != "encoder-decoder":
        return _tokens(model, prompt), None
    from models.tokens import to_target_tokens_and_mask
    from ui.prompts import check_length, check_text

    src = _tokens(model, prompt)
    decoder_text = decoder_text if decoder_text is not None else ""
    if decoder_text.strip():  # blank is fine here: the decoder then reads its start token alone
        decoder_text = check_text(decoder_text, "decoder_text")
    tgt = to_target_tokens_and_mask(model, decoder_text.strip())[0].to(src.device)  # start token + the text
    check_length(tgt.shape[1], model.cfg.n_ctx)
    return tgt, src


def lens_view(model, prompt: str, target: str = "", decoder_text: str = "") -> LensView:
    """The logit lens of ``prompt`` at every position; ``target`` (one token, optional) is
    followed layer by layer. Without a target, the model's own top prediction at the last
    position is followed. An encoder-decoder: the decoder's positions on ``decoder_text``, with
    ``prompt`` as the source (:func:`_inputs`)."""
    _check(model)
    tokens, src = _inputs(model, prompt, decoder_text)
    target_id = single_token(model, target, "target") if target.strip() else None
    lens = logit_lens(model, tokens, k=1, target=target_id, src=src)
    if target_id is None:  # follow the model's own final prediction
        target_id = int(lens.top_ids[-1, 0, -1, 0])
        lens = logit_lens(model, tokens, k=1, target=target_id, src=src)
    tops = [[lens.token_strings[int(i)] for i in lens.top_ids[l, 0, :, 0]] for l in range(len(lens.layer_labels))]
    first = int(lens.first_top1_layer()[0, -1])
    return LensView(
        layer_labels=list(lens.layer_labels),
        position_labels=list(lens.position_labels[0]),
        top_tokens=tops,
        top_probs=lens.top_probs[:, 0, :, 0].float().cpu().numpy(),
        target=model.to_str_tokens([target_id])[0],
        target_probs=lens.target_prob[:, 0].float().cpu().numpy(),
        target_rank_last=[int(r) for r in lens.target_rank[:, 0, -1]],
        first_top1_last=lens.layer_labels[first] if first >= 0 else None,
    )


@dataclass(frozen=True)
class AttributionView:
    layer_labels: list[str]
    per_layer: np.ndarray  # [layer]: direct effect of each layer's writes (embed first)
    heads: np.ndarray  # [n_layers, n_heads]
    logit: float
    constant: float
    total: float  # sum of every component's attribution
    mlp: Optional[np.ndarray] = None  # [n_layers]: each layer's MLP (without b_out); None: attention-only
    cross: Optional[np.ndarray] = None  # [n_layers, n_heads]: an encoder-decoder's cross-attention heads


def attribution_view(model, prompt: str, answer: str, wrong: str = "", decoder_text: str = "") -> AttributionView:
    """Direct logit attribution of ``prompt``'s last position to ``answer`` (or to the logit
    difference ``answer - wrong``), per layer and per head (an encoder-decoder: the decoder's
    last position on ``decoder_text``; ``heads`` are its self-attention heads, ``cross`` its
    cross-attention heads)."""
    _check(model)
    tokens, src = _inputs(model, prompt, decoder_text)
    a = single_token(model, answer, "answer")
    w = single_token(model, wrong, "wrong") if wrong.strip() else None
    dla = direct_logit_attribution(model, tokens, a, w, src=src)
    per_layer, labels = dla.by_layer()
    heads = dla.heads()[..., 0] if model.cfg.n_heads else np.zeros((0, 0))
    cross = dla.heads(cross=True)[..., 0].float().cpu().numpy() if src is not None else None
    mlp_rows = {layer: i for i, (kind, layer) in enumerate(zip(dla.kinds, dla.layers)) if kind == "mlp"}
    mlp = (np.array([float(dla.values[mlp_rows[l], 0]) for l in range(dla.n_layers)])
           if len(mlp_rows) == dla.n_layers else None)
    return AttributionView(
        layer_labels=list(labels),
        per_layer=per_layer[:, 0].float().cpu().numpy(),
        heads=heads.float().cpu().numpy(),
        logit=float(dla.logit[0]),
        constant=float(dla.constant[0]),
        total=float(dla.values[:, 0].sum()),
        mlp=mlp,
        cross=cross,
    )


@dataclass(frozen=True)
class NeuronAttributionView:
    layer: int
    neurons: np.ndarray  # [k] neuron indices, largest |attribution| first
    labels: list[str]  # "N12"
    values: np.ndarray  # [k] their direct logit attribution at the last position
    total: float  # sum over every neuron of the layer (= the layer's MLP row of the attribution)
    d_mlp: int


def neuron_attribution_view(model, prompt: str, answer: str, wrong: str = "", layer: int = 0,
                            k: int = 10, decoder_text: str = "") -> NeuronAttributionView:
    """The ``k`` neurons of ``layer``'s MLP with the largest |direct logit attribution| to
    ``answer`` (or ``answer - wrong``) at the last position (``circuits.neurons``), and the sum
    over all of them, which equals that layer's MLP attribution (bias ``b_out`` excluded)."""
    _check(model)
    cfg = model.cfg
    if not has_mlp(cfg):
        raise PromptError("no_mlp")
    if not 0 <= layer < cfg.n_layers:
        raise PromptError("layer_out_of_range", n_layers=cfg.n_layers - 1)
    tokens, src = _inputs(model, prompt, decoder_text)
    a = single_token(model, answer, "answer")
    w = single_token(model, wrong, "wrong") if wrong.strip() else None
    values = neuron_direct_logit_attribution(model, tokens, layer, a, w, positions=[-1], src=src)[0, 0]  # [d_mlp]
    top = values.abs().topk(max(1, min(int(k), values.shape[0]))).indices
    return NeuronAttributionView(
        layer=layer,
        neurons=top.cpu().numpy(),
        labels=[f"N{int(n)}" for n in top],
        values=values[top].float().cpu().numpy(),
        total=float(values.sum()),
        d_mlp=int(values.shape[0]),
    )


@dataclass(frozen=True)
class DecompositionView:
    """The final residual at one position as a sum of what each component wrote.

    ``shares[i] = <c_i, r> / |r|^2``: the part of the residual ``r`` along its own direction that
    component ``i`` wrote; the shares sum to 1 (``sum(c_i) == r``). ``norms[i] = |c_i|``."""

    labels: list[str]  # components (embed, pos_embed, L0H0, ..., L0 MLP, L0 bias) or layers
    shares: np.ndarray  # [component]
    norms: np.ndarray  # [component]
    residual_norm: float
    error: float  # max |sum of components - residual| (float rounding only)
    position: int
    position_label: str


def decomposition_view(model, prompt: str, position: int = -1, by_layer: bool = False,
                       decoder_text: str = "") -> DecompositionView:
    """``circuits.residual.decompose_residual`` of ``prompt`` at ``position`` (negative: from
    the end), per component or summed per writing layer (an encoder-decoder: its decoder's
    residual stream on ``decoder_text``)."""
    from circuits.residual import decompose_residual

    if model.cfg.family == "encoder":
        raise PromptError("decoder_only")
    tokens, src = _inputs(model, prompt, decoder_text)
    n = tokens.shape[1]
    if not -n <= position < n:
        raise PromptError("position_out_of_range", n=n - 1)
    d = decompose_residual(model, tokens, positions=[position], src=src)
    components, labels = d.by_layer() if by_layer else (d.components, list(d.labels))
    components = components[:, 0, 0].double()  # [component, d_model]
    residual = d.residual[0, 0].double()
    shares = components @ residual / residual.dot(residual).clamp_min(1e-30)
    return DecompositionView(
        labels=list(labels),
        shares=shares.float().cpu().numpy(),
        norms=components.norm(dim=-1).float().cpu().numpy(),
        residual_norm=float(residual.norm()),
        error=float((d.components[:, 0, 0].sum(0) - d.residual[0, 0]).abs().max()),
        position=int(d.positions[0, 0]),
        position_label=d.position_labels[0][0],
    )
