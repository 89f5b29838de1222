"""Ablations: replace activations by zero, their mean, or their value on another prompt, and
compare the run with the normal one.

An :class:`Ablation` names *what* (a head's output ``z`` or its ``q``/``k``/``v``/``pattern``, an
MLP neuron, a whole attention or MLP layer, the residual stream), *where* (layer, head or neuron,
optionally one position) and *how*:

* ``zero``: the activation is set to 0. Zeroing one head sets its ``z`` to 0 (the layer's bias
  ``b_O`` stays, as in TransformerLens); zeroing *every* head of a layer (at every position)
  removes the layer's whole output, bias included: it is the same as zero-ablating the ``attn``
  layer, whose output ``hook_attn_out`` becomes 0;
* ``mean``: its mean over a reference batch (``reference`` tokens; per position when they have
  the prompt's length, else over batch and positions);
* ``resample``: its value on a reference prompt drawn (seeded) for each prompt of the batch.

Several ablations apply at once. Hooks are temporary (``model.hooks``); the model is shared and
never keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from circuits.metrics import Metric

_HOOK = {
    "head": "attn.hook_z",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "pattern": "attn.hook_pattern",
    "neuron": "mlp.hook_post",
    "attn": "hook_attn_out",
    "mlp": "hook_mlp_out",
    "resid": "hook_resid_pre",
}
KINDS = ("zero", "mean", "resample")


@dataclass(frozen=True)
class Ablation:
    target: str  # head | q | k | v | pattern | neuron | attn | mlp | resid
    layer: int
    index: Optional[int] = None  # head (q/k/v: query or key/value head) or neuron; None for layers
    kind: str = "zero"  # zero | mean | resample
    position: Optional[int] = None  # None: every position

    def __post_init__(self):
        if self.target not in _HOOK:
            raise ValueError(f"target must be one of {sorted(_HOOK)}, not {self.target!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.target in ("head", "q", "k", "v", "pattern", "neuron") and self.index is None:
            raise ValueError(f"ablating a {self.target} needs its index")

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.{_HOOK[self.target]}"

    def selector(self, ndim: int) -> tuple:
        """Index of the ablated entries in the hook's activation (batch first)."""
        pos = slice(None) if self.position is None else self.position
        if self.target == "pattern":  # [batch, head, query, key]
            return (slice(None), self.index, pos)
        if self.target in ("head", "q", "k", "v"):  # [batch, pos, head, d_head]
            return (slice(None), pos, self.index)
        if self.target == "neuron":  # [batch, pos, d_mlp]
            return (slice(None), pos, self.index)
        return (slice(None), pos)  # attn, mlp (layer outputs), resid


@dataclass
class AblationResult:
    logits: Tensor
    clean_logits: Tensor
    loss: float
    clean_loss: float
    metric: Optional[float] = None
    clean_metric: Optional[float] = None


def _check(model, ab: Ablation) -> None:
    cfg = model.cfg
    if not 0 <= ab.layer < cfg.n_layers:
        raise ValueError(f"layer {ab.layer} is out of range: the model has layers 0..{cfg.n_layers - 1}")
    limit = {"head": cfg.n_heads, "q": cfg.n_heads, "pattern": cfg.n_heads, "k": cfg.n_key_value_heads,
             "v": cfg.n_key_value_heads, "neuron": cfg.d_mlp}.get(ab.target)
    if limit is not None and not 0 <= ab.index < limit:
        raise ValueError(f"{ab.target} index {ab.index} is out of range: layer {ab.layer} has 0..{limit - 1}")
    if ab.target in ("neuron", "mlp") and cfg.attn_only:
        raise ValueError("this model is attention-only: it has no MLP to ablate")


def _replacements(model, tokens, ablations, reference, seed):
    """hook name -> activation values to copy from (same shape as the run's), for mean/resample."""
    need = {ab.hook for ab in ablations if ab.kind != "zero"}
    if not need:
        return {}
    if reference is None:
        raise ValueError("mean and resample ablations need reference tokens (a batch of other prompts)")
    reference = reference.to(tokens.device)
    with torch.no_grad():
        _, ref = model.run_with_cache(reference, names_filter=lambda n: n in need)
    out = {}
    gen = torch.Generator().manual_seed(seed)
    for ab in ablations:
        if ab.kind == "zero" or (ab.hook, ab.kind) in out:
            continue
        acts = ref[ab.hook]
        B, T = tokens.shape
        if ab.kind == "mean":
            if ab.target == "pattern":  # [b, h, q, k]: per query/key position, needs the same length
                if acts.shape[2] != T:
                    raise ValueError("mean-ablating a pattern needs reference prompts of the prompt's token length")
                mean = acts.mean(0, keepdim=True)
            elif acts.shape[1] == T:
                mean = acts.mean(0, keepdim=True)  # per position
            else:
                mean = acts.mean((0, 1), keepdim=True)  # over batch and positions
            out[(ab.hook, ab.kind)] = mean.expand(B, -1, -1, -1) if ab.target == "pattern" else mean.expand(B, T, *mean.shape[2:])
        else:
            seq_dim = 2 if ab.target == "pattern" else 1
            if acts.shape[seq_dim] != T:
                raise ValueError(
                    f"resample ablation needs reference prompts of the same token length as the prompt ({T}), "
                    f"got {acts.shape[seq_dim]}: use prompts of the same template, or mean ablation"
                )
            rows = torch.randint(0, acts.shape[0], (B,), generator=gen).to(acts.device)
            out[(ab.hook, ab.kind)] = acts[rows]
    return out


def ablation_hooks(model, tokens: Tensor, ablations: Sequence[Ablation], reference: Optional[Tensor] = None,
                   seed: int = 0) -> list:
    """The ``(hook name, function)`` pairs that apply ``ablations`` (for ``model.hooks``)."""
    for ab in ablations:
        _check(model, ab)
    ablations = list(ablations)
    for layer in range(model.cfg.n_layers):  # every head of a layer zeroed everywhere = the layer removed
        zeroed = {ab.index for ab in ablations if ab.target == "head" and ab.layer == layer and ab.kind == "zero"
                  and ab.position is None}
        if len(zeroed) == model.cfg.n_heads:
            ablations.append(Ablation("attn", layer, kind="zero"))
    values = _replacements(model, tokens, ablations, reference, seed)
    by_hook: dict[str, list[Ablation]] = {}
    for ab in ablations:
        by_hook.setdefault(ab.hook, []).append(ab)

    def make(mine):
        def fn(act, hook):
            act = act.clone()
            for ab in mine:
                sel = ab.selector(act.ndim)
                if ab.kind == "zero":
                    act[sel] = 0
                else:
                    act[sel] = values[(ab.hook, ab.kind)].to(act)[sel]
            return act
        return fn

    return [(name, make(mine)) for name, mine in by_hook.items()]


def ablate(model, tokens: Tensor, ablations: Sequence[Ablation], metric: Optional[Metric] = None,
           reference: Optional[Tensor] = None, seed: int = 0, attention_mask: Optional[Tensor] = None) -> AblationResult:
    """Run ``tokens`` with ``ablations`` applied, next to the normal run: logits, next-token loss
    and ``metric`` of both."""
    from models.transformer import lm_loss

    device = model.W_E.device
    tokens = tokens.to(device)
    hooks = ablation_hooks(model, tokens, ablations, reference, seed)
    with torch.no_grad():
        clean = model(tokens, attention_mask=attention_mask)
        with model.hooks(fwd_hooks=hooks):
            logits = model(tokens, attention_mask=attention_mask)
    return AblationResult(
        logits=logits, clean_logits=clean,
        loss=float(lm_loss(logits, tokens, attention_mask)), clean_loss=float(lm_loss(clean, tokens, attention_mask)),
        metric=None if metric is None else float(metric(logits)),
        clean_metric=None if metric is None else float(metric(clean)),
    )
