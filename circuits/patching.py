"""Activation patching (Heimersheim & Nanda 2024), exact and fast.

One run (the *target*: the corrupted prompt when denoising, the clean one when noising) is
repeated with one activation replaced by its value in the other run (the *source* cache). Each
sweep returns the metric for every patch, shaped like TransformerLens's
``transformer_lens.patching.get_act_patch_*`` results, and equal to them (tests check it).

Why it is faster than one full forward per patch:

* **shared prefix**: a patch at layer ``l`` cannot change layers before ``l``, so each run starts
  from the target run's ``blocks.{l}.hook_resid_pre``, computed once;
* **batched patches**: all patches that start at the same layer run as one batch (patch ``i``
  owns rows ``i*B .. (i+1)*B`` of the batch), chunked to at most ``max_rows`` rows;
* **only the positions the metric reads** go through the final norm and the unembedding
  (``metric.positions``; a 50k-token unembedding is most of a short prompt's cost).

Sweeps report progress through ``progress(done, total)`` and stop when ``cancel()`` returns
True (raising :class:`Cancelled`). Hooks are temporary (``model.hooks``), never left on the
model. Decoder-only and encoder-only models; token lengths of the two runs must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from circuits.metrics import Metric

Progress = Optional[Callable[[int, int], None]]
Cancel = Optional[Callable[[], bool]]


class Cancelled(RuntimeError):
    """The sweep was cancelled through its ``cancel`` callback."""


class PatchingInputError(ValueError):
    """Clean and corrupted inputs that cannot be patched into each other."""


@dataclass(frozen=True)
class Patch:
    """Replace ``act[index]`` at hook ``hook`` (a hook of layer ``layer``) by the source value."""

    layer: int
    hook: str
    index: tuple


@dataclass
class PatchingResult:
    """``values[...]``: the metric with each patch; ``axes`` name the dimensions and ``labels``
    their ticks. ``baseline`` is the unpatched target run's metric, ``source`` the source run's."""

    values: Tensor
    axes: tuple[str, ...]
    labels: dict[str, list[str]] = field(default_factory=dict)
    baseline: float = float("nan")
    source: float = float("nan")

    def normalized(self) -> Tensor:
        """0 = the target run's metric, 1 = the source run's (denoising: 1 = fully restored)."""
        return (self.values - self.baseline) / (self.source - self.baseline)


def check_same_shape(clean: Tensor, corrupted: Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise PatchingInputError(
            f"clean and corrupted inputs have different shapes {tuple(clean.shape)} and {tuple(corrupted.shape)}: "
            "patching replaces an activation at the same position, so both prompts need the same number of tokens. "
            "Change words of the same token length (e.g. swap one name for another), or pad the shorter prompt."
        )


def _run_patches(
    model,
    tokens: Tensor,
    source_cache,
    metric: Metric,
    patches: Sequence[Patch],
    attention_mask: Optional[Tensor] = None,
    max_rows: int = 512,
    progress: Progress = None,
    cancel: Cancel = None,
) -> Tensor:
    """The metric of each patch, ``[len(patches)]`` (see the module docstring)."""
    device = model.W_E.device
    tokens = tokens.to(device)
    B = tokens.shape[0]
    mask = attention_mask.to(device) if attention_mask is not None else None
    starts = sorted({p.layer for p in patches})
    with torch.no_grad():
        _, target = model.run_with_cache(
            tokens, attention_mask=mask, names_filter=lambda n: n in {f"blocks.{l}.hook_resid_pre" for l in starts}
        )
    n_layers = model.cfg.n_layers
    values = torch.empty(len(patches))
    order = {id(p): i for i, p in enumerate(patches)}
    per_chunk = max(1, max_rows // B)
    done = 0
    for layer in starts:
        at_layer = [p for p in patches if p.layer == layer]
        resid = target[f"blocks.{layer}.hook_resid_pre"]
        for c in range(0, len(at_layer), per_chunk):
            if cancel is not None and cancel():
                raise Cancelled(f"patching cancelled after {done} of {len(patches)} patches")
            chunk = at_layer[c : c + per_chunk]
            n = len(chunk)
            hooks = []
            for hook_name in dict.fromkeys(p.hook for p in chunk):
                mine = [(i, p.index) for i, p in enumerate(chunk) if p.hook == hook_name]
                src = source_cache[hook_name].to(device)

                def patch(act, hook, mine=mine, src=src):
                    act = act.clone()
                    view = act.view(n, B, *act.shape[1:])
                    for i, index in mine:
                        view[i][index] = src[index]
                    return act

                hooks.append((hook_name, patch))
            x = resid.repeat(n, *([1] * (resid.ndim - 1)))
            rep_mask = mask.repeat(n, 1) if mask is not None else None
            with torch.no_grad(), model.hooks(fwd_hooks=hooks):
                final = model(x, attention_mask=rep_mask, start_at_layer=layer, stop_at_layer=n_layers)
                logits = model.head_output(model.final_norm(metric.select(final)))
            logits = logits.view(n, B, *logits.shape[1:])
            for i, p in enumerate(chunk):
                values[order[id(p)]] = metric.on_positions(logits[i]).float().cpu()
            done += n
            if progress is not None:
                progress(done, len(patches))
    return values


def _baselines(model, tokens, source_tokens, metric, attention_mask=None) -> tuple[float, float]:
    with torch.no_grad():
        t = float(metric(model(tokens, attention_mask=attention_mask)))
        s = float(metric(model(source_tokens, attention_mask=attention_mask))) if source_tokens is not None else float("nan")
    return t, s


def _pos_labels(model, tokens: Tensor) -> list[str]:
    try:
        toks = model.to_str_tokens(tokens[0])
    except Exception:  # noqa: BLE001 - a model without tokenizer gets numeric labels
        toks = [str(int(t)) for t in tokens[0]]
    return [f"{i}: {t}" for i, t in enumerate(toks)]


def _sweep(model, tokens, source_cache, metric, patches, shape, axes, labels, source_tokens, attention_mask,
           max_rows, progress, cancel) -> PatchingResult:
    values = _run_patches(model, tokens, source_cache, metric, patches, attention_mask, max_rows, progress, cancel)
    baseline, source = _baselines(model, tokens, source_tokens, metric, attention_mask)
    return PatchingResult(values.view(*shape), axes, labels, baseline, source)


# --------------------------------------------------------------------------------- sweeps
RESID_HOOKS = {"pre": "hook_resid_pre", "mid": "hook_resid_mid", "post": "hook_resid_post"}
LAYER_OUT_HOOKS = {"attn": "hook_attn_out", "mlp": "hook_mlp_out"}


def patch_residual(model, tokens: Tensor, source_cache, metric: Metric, where: str = "pre", *,
                   source_tokens: Optional[Tensor] = None, attention_mask=None, max_rows: int = 512,
                   progress: Progress = None, cancel: Cancel = None) -> PatchingResult:
    """Residual stream (``pre``/``mid``/``post``) by layer x position: ``[n_layers, pos]``
    (= ``get_act_patch_resid_pre`` / ``get_act_patch_resid_mid``)."""
    if source_tokens is not None:
        check_same_shape(source_tokens, tokens)
    L, T = model.cfg.n_layers, tokens.shape[1]
    hook = RESID_HOOKS[where]
    patches = [Patch(l, f"blocks.{l}.{hook}", (slice(None), p)) for l in range(L) for p in range(T)]
    labels = {"layer": [str(l) for l in range(L)], "position": _pos_labels(model, tokens)}
    return _sweep(model, tokens, source_cache, metric, patches, (L, T), ("layer", "position"), labels,
                  source_tokens, attention_mask, max_rows, progress, cancel)


def patch_layer_outputs(model, tokens: Tensor, source_cache, metric: Metric, component: str = "attn", *,
                        source_tokens: Optional[Tensor] = None, attention_mask=None, max_rows: int = 512,
                        progress: Progress = None, cancel: Cancel = None) -> PatchingResult:
    """Attention or MLP output by layer x position: ``[n_layers, pos]``
    (= ``get_act_patch_attn_out`` / ``get_act_patch_mlp_out``)."""
    if source_tokens is not None:
        check_same_shape(source_tokens, tokens)
    L, T = model.cfg.n_layers, tokens.shape[1]
    hook = LAYER_OUT_HOOKS[component]
    patches = [Patch(l, f"blocks.{l}.{hook}", (slice(None), p)) for l in range(L) for p in range(T)]
    labels = {"layer": [str(l) for l in range(L)], "position": _pos_labels(model, tokens)}
    return _sweep(model, tokens, source_cache, metric, patches, (L, T), ("layer", "position"), labels,
                  source_tokens, attention_mask, max_rows, progress, cancel)


def _head_labels(model) -> list[str]:
    return [str(h) for h in range(model.cfg.n_heads)]


def patch_head_outputs(model, tokens: Tensor, source_cache, metric: Metric, by_position: bool = False, *,
                       source_tokens: Optional[Tensor] = None, attention_mask=None, max_rows: int = 512,
                       progress: Progress = None, cancel: Cancel = None) -> PatchingResult:
    """Each head's output (``hook_z``, before ``W_O``) at every position: ``[n_layers, n_heads]``
    (= ``get_act_patch_attn_head_out_all_pos``); ``by_position``: ``[n_layers, pos, n_heads]``
    (= ``get_act_patch_attn_head_out_by_pos``)."""
    if source_tokens is not None:
        check_same_shape(source_tokens, tokens)
    L, H, T = model.cfg.n_layers, model.cfg.n_heads, tokens.shape[1]
    labels = {"layer": [str(l) for l in range(L)], "head": _head_labels(model)}
    if by_position:
        patches = [Patch(l, f"blocks.{l}.attn.hook_z", (slice(None), p, h))
                   for l in range(L) for p in range(T) for h in range(H)]
        labels["position"] = _pos_labels(model, tokens)
        return _sweep(model, tokens, source_cache, metric, patches, (L, T, H), ("layer", "position", "head"), labels,
                      source_tokens, attention_mask, max_rows, progress, cancel)
    patches = [Patch(l, f"blocks.{l}.attn.hook_z", (slice(None), slice(None), h)) for l in range(L) for h in range(H)]
    return _sweep(model, tokens, source_cache, metric, patches, (L, H), ("layer", "head"), labels,
                  source_tokens, attention_mask, max_rows, progress, cancel)


def patch_head_vectors(model, tokens: Tensor, source_cache, metric: Metric, vector: str = "q", *,
                       source_tokens: Optional[Tensor] = None, attention_mask=None, max_rows: int = 512,
                       progress: Progress = None, cancel: Cancel = None) -> PatchingResult:
    """A head's queries, keys, values (``q``/``k``/``v``) or attention pattern (``pattern``) at every
    position: ``[n_layers, heads]`` (= ``get_act_patch_attn_head_{q,k,v,pattern}_all_pos``). With
    grouped-query attention, ``k`` and ``v`` sweep the key/value heads (``n_key_value_heads``)."""
    if source_tokens is not None:
        check_same_shape(source_tokens, tokens)
    cfg = model.cfg
    L = cfg.n_layers
    H = cfg.n_key_value_heads if vector in ("k", "v") else cfg.n_heads
    if vector == "pattern":
        patches = [Patch(l, f"blocks.{l}.attn.hook_pattern", (slice(None), h)) for l in range(L) for h in range(H)]
    elif vector in ("q", "k", "v"):
        patches = [Patch(l, f"blocks.{l}.attn.hook_{vector}", (slice(None), slice(None), h))
                   for l in range(L) for h in range(H)]
    else:
        raise ValueError(f"vector must be q, k, v or pattern, not {vector!r}")
    labels = {"layer": [str(l) for l in range(L)], "head": [str(h) for h in range(H)]}
    return _sweep(model, tokens, source_cache, metric, patches, (L, H), ("layer", "head"), labels,
                  source_tokens, attention_mask, max_rows, progress, cancel)


def tqdm_progress(desc: str = "patching"):
    """A ``progress`` callback that draws a tqdm bar (for scripts and notebooks)."""
    from tqdm.auto import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress
