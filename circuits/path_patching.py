"""Path patching (Wang et al. 2022, "Interpretability in the Wild"): the effect of a set of
*sender* heads on a set of *receivers* through the direct paths between them only.

With a clean run ``x_clean`` and a corrupted run ``x_corr``:

1. run ``x_clean`` with the senders' outputs (``hook_z``) taken from ``x_corr`` and every other
   head's output frozen at its clean value (and, with ``freeze_mlps`` (default), every MLP output
   too: "freezing everything else"), so the change reaches later layers only through the
   residual stream, directly from the senders;
2. record what the receivers read in that run: their queries, keys or values
   (``("q"|"k"|"v", layer, head)``), or the final residual stream (``"resid"``);
3. run ``x_clean`` again with only those receiver inputs patched in, everything else computed
   normally, and read the metric. (For the final residual, step 1's own output is that run.)

``path_patching_sweep`` repeats it for every possible sender head: ``[n_layers, n_heads]``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from circuits.metrics import Metric
from circuits.patching import PatchingResult, Progress, Cancel, Cancelled, _head_labels, check_same_shape

Head = tuple[int, int]
Receiver = Union[str, tuple[str, int, int]]  # "resid" or ("q"|"k"|"v", layer, head)


def _receiver_hooks(model, receivers: Sequence[Receiver]) -> list[tuple[str, int]]:
    out = []
    for r in receivers:
        if r == "resid":
            continue
        vec, layer, head = r
        if vec not in ("q", "k", "v"):
            raise ValueError(f"a receiver head reads q, k or v, not {vec!r}")
        n = model.cfg.n_heads if vec == "q" else model.cfg.n_key_value_heads
        if not (0 <= layer < model.cfg.n_layers and 0 <= head < n):
            raise ValueError(f"receiver {r} is out of range (layers 0..{model.cfg.n_layers - 1}, heads 0..{n - 1})")
        out.append((f"blocks.{layer}.attn.hook_{vec}", head))
    return out


def path_patching(
    model, clean: Tensor, corrupted: Tensor, metric: Metric, senders: Sequence[Head],
    receivers: Sequence[Receiver] = ("resid",), freeze_mlps: bool = True,
    clean_cache=None, corrupted_cache=None,
) -> float:
    """The metric of the clean run when only the senders -> receivers paths carry the corrupted
    senders' outputs (see the module docstring). ``receivers`` mixes ``"resid"`` (the final
    residual stream) and ``(vector, layer, head)`` tuples; give either, not both kinds."""
    check_same_shape(clean, corrupted)
    device = model.W_E.device
    clean, corrupted = clean.to(device), corrupted.to(device)
    if "resid" in receivers and len(receivers) > 1:
        raise ValueError("receivers are either the final residual ('resid') or heads' q/k/v, not both")
    L = model.cfg.n_layers
    z_names = {f"blocks.{l}.attn.hook_z" for l in range(L)}
    mlp_names = {f"blocks.{l}.hook_mlp_out" for l in range(L)} if freeze_mlps and not model.cfg.attn_only else set()
    with torch.no_grad():
        if clean_cache is None:
            _, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in z_names | mlp_names)
        if corrupted_cache is None:
            _, corrupted_cache = model.run_with_cache(corrupted, names_filter=lambda n: n in z_names)
    by_layer: dict[int, list[int]] = {}
    for layer, head in senders:
        by_layer.setdefault(layer, []).append(head)

    def freeze_z(act, hook):
        layer = int(hook.name.split(".")[1])
        out = clean_cache[hook.name].clone()
        for h in by_layer.get(layer, []):
            out[:, :, h] = corrupted_cache[hook.name][:, :, h]
        return out

    def freeze_mlp(act, hook):
        return clean_cache[hook.name]

    receiver_hooks = _receiver_hooks(model, receivers)
    recorded: dict[str, Tensor] = {}

    def record(act, hook):
        recorded[hook.name] = act.clone()
        return act

    step1 = [(n, freeze_z) for n in z_names] + [(n, freeze_mlp) for n in mlp_names]
    step1 += [(n, record) for n in dict.fromkeys(n for n, _ in receiver_hooks)]
    with torch.no_grad(), model.hooks(fwd_hooks=step1):
        logits = model(clean)
    if not receiver_hooks:  # the final residual: step 1's output is the answer
        return float(metric(logits))

    def patch(act, hook):
        act = act.clone()
        for name, head in receiver_hooks:
            if name == hook.name:
                act[:, :, head] = recorded[name][:, :, head]
        return act

    with torch.no_grad(), model.hooks(fwd_hooks=[(n, patch) for n in dict.fromkeys(n for n, _ in receiver_hooks)]):
        return float(metric(model(clean)))


def path_patching_sweep(
    model, clean: Tensor, corrupted: Tensor, metric: Metric, receivers: Sequence[Receiver] = ("resid",),
    freeze_mlps: bool = True, progress: Progress = None, cancel: Cancel = None,
) -> PatchingResult:
    """Path patching from each head alone to ``receivers``: ``[n_layers, n_heads]``; heads at or
    after the last receiver's layer (which cannot reach it) are NaN."""
    check_same_shape(clean, corrupted)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    last = L if "resid" in receivers else max(r[1] for r in receivers if r != "resid")
    z_names = {f"blocks.{l}.attn.hook_z" for l in range(L)}
    mlp_names = {f"blocks.{l}.hook_mlp_out" for l in range(L)}
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in z_names | mlp_names)
        _, corrupted_cache = model.run_with_cache(corrupted, names_filter=lambda n: n in z_names)
        baseline = float(metric(model(clean)))
        source = float(metric(model(corrupted)))
    values = torch.full((L, H), float("nan"))
    total, done = min(last, L) * H, 0
    for layer in range(min(last, L)):
        for head in range(H):
            if cancel is not None and cancel():
                raise Cancelled(f"path patching cancelled after {done} of {total} senders")
            values[layer, head] = path_patching(model, clean, corrupted, metric, [(layer, head)], receivers,
                                                freeze_mlps, clean_cache, corrupted_cache)
            done += 1
            if progress is not None:
                progress(done, total)
    labels = {"layer": [str(l) for l in range(L)], "head": _head_labels(model)}
    return PatchingResult(values, ("layer", "head"), labels, baseline, source)
