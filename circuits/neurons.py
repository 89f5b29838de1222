"""MLP neurons: where one fires, and what it writes into the logits (Geva et al. 2022,
"Transformer Feed-Forward Layers Build Predictions by Promoting Concepts in the Vocabulary
Space"; Elhage et al. 2022, "Softmax Linear Units").

An MLP writes ``out = sum_n post_n W_out[n] + b_out``: neuron ``n``'s *activation* is ``post_n``
(``blocks.{l}.mlp.hook_post``), the coefficient of its output row ``W_out[n]``. For a ReLU/GELU
MLP that is ``act(x W_in + b_in)_n``; for SwiGLU (Llama, SmolLM2) it is the gated product
``SiLU(x W_gate)_n * (x W_in)_n``, not the gate alone, because that product is what multiplies
``W_out[n]`` (so it can be large and negative: look at both ends, ``largest=False``).

Direct logit effect. With every norm's scale frozen (see ``circuits.residual``), a vector ``v``
written by the MLP of layer ``l`` reaches the logits as ``k * M(v) W_U`` where ``M`` is
weight-only (each later norm's centring, for LayerNorm, and gain ``w``, including the final norm)
and ``k = prod 1 / scale`` over those norms at that position. ``k`` is a positive number per
position, so:

* :func:`neuron_logit_effect` gives ``M(W_out[n]) W_U``, the logit change per unit of activation
  at unit scales: which tokens the neuron promotes and suppresses, the same ranking at every
  position (in pre-LN models only the final norm is on the path);
* :func:`neuron_direct_logit_attribution` gives ``post_n * k * M(W_out[n]) . u`` at each
  position, with the cached scales: the neurons of a layer sum to that layer's MLP row of
  ``circuits.residual.direct_logit_attribution`` (bias ``b_out`` excluded, as there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.residual import (
    Positions,
    Text,
    TokenIds,
    _float,
    downstream,
    final_path_norm,
    logits_stack,
    path_norms,
    position_index,
    prepare_inputs,
    require_linear_head,
    run_cached,
    stop_after,
    take,
    through_norms,
    token_ids,
    token_strings,
    unembed_direction,
)

Neurons = Union[None, int, Sequence[int], Tensor]


def _mlp(model, layer: int):
    _, stack = logits_stack(model)
    if not -stack.cfg.n_layers <= layer < stack.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range for {stack.cfg.n_layers} layers")
    block = stack.blocks[layer]
    if not hasattr(block, "mlp"):
        raise ValueError(f"{model.cfg.model_name!r} is attention-only: it has no MLP neurons")
    return block.mlp, layer % stack.cfg.n_layers


def _neuron_index(neurons: Neurons, d_mlp: int, device) -> Int[Tensor, "neuron"]:
    index = torch.arange(d_mlp, device=device) if neurons is None else torch.as_tensor(neurons, device=device).long()
    index = index.reshape(-1)
    if bool((index < -d_mlp).any() or (index >= d_mlp).any()):
        raise ValueError(f"neurons {neurons} out of range for d_mlp = {d_mlp}")
    return index % d_mlp


# ----------------------------------------------------------------------------- activations


@dataclass
class TopActivations:
    """The ``k`` positions of a batch where neuron ``neuron`` of layer ``layer`` is largest (or,
    with ``largest=False``, most negative), in order."""

    layer: int
    neuron: int
    activations: Float[Tensor, "batch pos"]  # every position; NaN at padding
    batch_index: Int[Tensor, "k"]
    positions: Int[Tensor, "k"]
    values: Float[Tensor, "k"]
    tokens: list[str]  # the token at each top position


@torch.no_grad()
def neuron_activations(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    layer: int,
    neurons: Neurons = None,
    *,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> Float[Tensor, "batch pos neuron"]:
    """``mlp.hook_post`` of ``layer`` for ``neurons`` (all by default). A decoder- or encoder-only
    model runs only up to that layer. Encoder-decoders: the decoder's neurons."""
    _, layer = _mlp(model, layer)
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, _ = logits_stack(model)
    name = f"{prefix}blocks.{layer}.mlp.hook_post"
    _, cache = run_cached(model, tokens, mask, src, src_mask, [name], **stop_after(model, layer + 1))
    post = _float(cache[name])
    return post[..., _neuron_index(neurons, post.shape[-1], post.device)]


@torch.no_grad()
def top_activating_positions(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    layer: int,
    neuron: int,
    k: int = 10,
    *,
    largest: bool = True,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> TopActivations:
    """Where neuron ``neuron`` of ``layer`` fires most on a prompt or batch (padding excluded)."""
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    acts = neuron_activations(model, tokens, layer, [neuron], attention_mask=mask, src=src,
                              src_attention_mask=src_mask)[..., 0]
    if mask is not None:
        acts = acts.masked_fill(~mask.bool(), float("nan"))
    fill = float("-inf") if largest else float("inf")
    ranked = acts.nan_to_num(nan=fill).flatten()
    real = int((~acts.isnan()).sum())
    values, flat = ranked.topk(min(k, real), largest=largest)
    batch_index, positions = flat // acts.shape[1], flat % acts.shape[1]
    strings = token_strings(model, tokens[batch_index, positions]) if len(flat) else {}
    return TopActivations(
        layer=_mlp(model, layer)[1], neuron=neuron, activations=acts, batch_index=batch_index, positions=positions,
        values=values, tokens=[strings[int(t)] for t in tokens[batch_index, positions]],
    )


# ----------------------------------------------------------------------------- logit effects


def _write_directions(model, layer: int, neurons: Tensor) -> Float[Tensor, "neuron d_model"]:
    """``M(W_out[n])``: each neuron's output row through the weight-only part of every norm
    between it and the unembedding (module docstring)."""
    mlp, layer = _mlp(model, layer)
    prefix, stack = logits_stack(model)
    norms = downstream(path_norms(prefix, stack), layer, "mlp") + final_path_norm(prefix, stack)
    return through_norms(_float(mlp.W_out[neurons]), norms)


@dataclass
class NeuronLogitEffect:
    """``logit_weights[t]``: the change of logit ``t`` per unit of the neuron's activation, at
    unit norm scales (divide by the scales on the path for a given position); the ``k`` most
    promoted and most suppressed tokens."""

    layer: int
    neuron: int
    logit_weights: Float[Tensor, "d_vocab"]
    promoted_ids: Int[Tensor, "k"]
    promoted_values: Float[Tensor, "k"]
    promoted_tokens: list[str]
    suppressed_ids: Int[Tensor, "k"]
    suppressed_values: Float[Tensor, "k"]
    suppressed_tokens: list[str]


@torch.no_grad()
def neuron_logit_weights(model, layer: int, neurons: Neurons) -> Float[Tensor, "neuron d_vocab"]:
    """``M(W_out[n]) W_U`` for each of ``neurons`` (no ``b_U``: it is not the neuron's)."""
    require_linear_head(model, "a neuron's logit effect")
    mlp, _ = _mlp(model, layer)
    index = _neuron_index(neurons, mlp.W_out.shape[0], mlp.W_out.device)
    return _write_directions(model, layer, index) @ _float(model.W_U)


@torch.no_grad()
def neuron_logit_effect(model, layer: int, neuron: int, k: int = 10) -> NeuronLogitEffect:
    """Tokens neuron ``neuron`` of ``layer`` promotes and suppresses directly (weights only)."""
    weights = neuron_logit_weights(model, layer, [neuron])[0]
    k = min(k, weights.shape[0])
    up, down = weights.topk(k), weights.topk(k, largest=False)
    strings = token_strings(model, torch.cat([up.indices, down.indices]))
    return NeuronLogitEffect(
        layer=_mlp(model, layer)[1], neuron=neuron, logit_weights=weights,
        promoted_ids=up.indices, promoted_values=up.values, promoted_tokens=[strings[int(i)] for i in up.indices],
        suppressed_ids=down.indices, suppressed_values=down.values,
        suppressed_tokens=[strings[int(i)] for i in down.indices],
    )


@torch.no_grad()
def neuron_direct_logit_attribution(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    layer: int,
    answer: TokenIds,
    wrong: Optional[TokenIds] = None,
    *,
    neurons: Neurons = None,
    positions: Positions = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> Float[Tensor, "batch pos neuron"]:
    """Each neuron's direct effect on ``logit[answer]`` (minus ``logit[wrong]``) at each of
    ``positions`` (all by default): ``post_n * W_out[n]`` through the later norms and the final
    norm with their cached scales, dotted with the unembedding direction. ``answer``/``wrong``:
    one token for all prompts, or one per prompt."""
    require_linear_head(model, "a neuron's direct logit attribution")
    mlp, layer = _mlp(model, layer)
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    norms = downstream(path_norms(prefix, stack), layer, "mlp") + final_path_norm(prefix, stack)
    post_name = f"{prefix}blocks.{layer}.mlp.hook_post"
    _, cache = run_cached(model, tokens, mask, src, src_mask, [post_name] + [n.hook for n in norms])
    index = position_index(positions, tokens, mask)
    neuron_index = _neuron_index(neurons, mlp.W_out.shape[0], index.device)
    acts = _float(take(cache[post_name], index))[..., neuron_index]  # [batch, n, neuron]
    inv_scale = torch.ones_like(acts[..., 0])
    for n in norms:  # k = prod 1/scale: every frozen norm only rescales by a per-position number
        inv_scale = inv_scale / _float(take(cache[n.hook], index))[..., 0]
    batch = tokens.shape[0]
    a = token_ids(model, answer, batch)
    w = token_ids(model, wrong, batch) if wrong is not None else None
    per_unit = torch.einsum("nd,bd->bn", _write_directions(model, layer, neuron_index), unembed_direction(model, a, w))
    return acts * inv_scale[..., None] * per_unit[:, None, :]
