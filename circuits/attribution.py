"""Attribution patching (Nanda 2023; Syed et al. 2023): a linear approximation of activation
patching from two forward passes and one backward pass.

For an activation ``a`` with clean value ``a_clean`` and corrupted value ``a_corr``, patching it
clean -> corrupted (denoising) changes the metric by approximately

    (a_clean - a_corr) . d metric / d a   (gradient taken on the corrupted run)

summed over the entries the exact patch replaces (every position of a head, or one position of
the residual stream ...). The sweeps below return the same shapes as ``circuits.patching``'s
exact sweeps, as the *patched metric* (baseline + estimated change), so the two can be compared
directly; :func:`compare` gives their correlation.

The gradient is taken with ``torch.autograd.grad`` with respect to the activations only (no
parameter gradients are computed or stored), on the model's device.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from circuits.metrics import Metric
from circuits.patching import PatchingResult, _head_labels, _pos_labels, check_same_shape

_HOOKS = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "head_out": "attn.hook_z",
    "head_out_by_pos": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
}


def attribution_patching(
    model, clean_tokens: Tensor, corrupted_tokens: Tensor, metric: Metric, sweep: str = "head_out",
    attention_mask: Optional[Tensor] = None,
) -> PatchingResult:
    """Estimated denoising patching results for ``sweep`` (``resid_pre``, ``resid_mid``,
    ``attn_out``, ``mlp_out``: ``[n_layers, pos]``; ``head_out``: ``[n_layers, n_heads]``;
    ``head_out_by_pos``: ``[n_layers, pos, n_heads]``; ``q``/``k``/``v``/``pattern``:
    ``[n_layers, heads]``, key/value heads for ``k``/``v``)."""
    check_same_shape(clean_tokens, corrupted_tokens)
    if sweep not in _HOOKS:
        raise ValueError(f"sweep must be one of {sorted(_HOOKS)}, not {sweep!r}")
    device = model.W_E.device
    clean_tokens, corrupted_tokens = clean_tokens.to(device), corrupted_tokens.to(device)
    L = model.cfg.n_layers
    names = [f"blocks.{l}.{_HOOKS[sweep]}" for l in range(L)]
    with torch.no_grad():
        clean_logits, clean = model.run_with_cache(
            clean_tokens, attention_mask=attention_mask, names_filter=lambda n: n in names
        )

    saved: dict[str, Tensor] = {}

    def leaf(act, hook):  # the embedding output becomes the root of the graph, whatever the parameters' flags
        return act.detach().requires_grad_(True)

    def keep(act, hook):
        saved[hook.name] = act
        return act

    hooks = [("blocks.0.hook_resid_pre", leaf)] + [(n, keep) for n in names]
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(corrupted_tokens, attention_mask=attention_mask)
        value = metric(logits)
        grads = torch.autograd.grad(value, [saved[n] for n in names], allow_unused=True)
    baseline = float(value.detach())
    rows = []
    for n, g in zip(names, grads):
        diff = clean[n] - saved[n].detach()
        g = torch.zeros_like(diff) if g is None else g
        prod = (diff * g).float()
        if sweep in ("head_out", "q", "k", "v"):
            rows.append(prod.sum(dim=(0, 1, 3)))  # [heads]
        elif sweep == "pattern":
            rows.append(prod.sum(dim=(0, 2, 3)))  # [batch, head, q, k] -> [heads]
        elif sweep == "head_out_by_pos":
            rows.append(prod.sum(dim=(0, 3)))  # [pos, heads]
        else:
            rows.append(prod.sum(dim=(0, 2)))  # [pos]
    values = baseline + torch.stack(rows).detach().cpu()
    source = float(metric(clean_logits))
    labels = {"layer": [str(l) for l in range(L)]}
    if sweep in ("head_out", "q", "k", "v", "pattern"):
        axes = ("layer", "head")
        n = model.cfg.n_key_value_heads if sweep in ("k", "v") else model.cfg.n_heads
        labels["head"] = [str(h) for h in range(n)]
    elif sweep == "head_out_by_pos":
        axes = ("layer", "position", "head")
        labels.update(position=_pos_labels(model, corrupted_tokens), head=_head_labels(model))
    else:
        axes = ("layer", "position")
        labels["position"] = _pos_labels(model, corrupted_tokens)
    return PatchingResult(values, axes, labels, baseline, source)


def compare(estimated: PatchingResult, exact: PatchingResult) -> float:
    """Pearson correlation of the estimated and exact changes of the metric."""
    a = (estimated.values - estimated.baseline).flatten().double()
    b = (exact.values - exact.baseline).flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])
