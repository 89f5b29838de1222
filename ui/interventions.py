"""Pure computations behind the "Ablate & patch" page (no Streamlit).

* :func:`ablation_predictions`: the next-token predictions of a prompt with and without a set of
  ablated heads / neurons, and the loss of both runs;
* :func:`patching_sweep`: a clean and a corrupted prompt, an answer and a wrong token, and one of
  the sweeps of ``circuits.patching`` (exact) or ``circuits.attribution`` (approximate), as a
  normalized ``[rows, columns]`` table with labels (1 = the clean behaviour restored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from circuits.ablation import Ablation, ablate
from circuits.attribution import attribution_patching
from circuits.metrics import LogitDiff
from circuits.patching import (
    PatchingInputError,
    patch_head_outputs,
    patch_layer_outputs,
    patch_residual,
)
from ui.patterns import PromptError
from ui import settings
from ui.model_pool import release_memory
from ui.prompts import prompt_tokens

SWEEPS = ("resid_pre", "attn_out", "mlp_out", "head_out", "attribution_head_out", "attribution_resid_pre",
          "path_head_to_logits")
ABLATION_KINDS = ("zero", "mean", "resample")
_HEAD = re.compile(r"^L(\d+)H(\d+)$")


def head_names(cfg) -> list[str]:
    return [f"L{l}H{h}" for l in range(cfg.n_layers) for h in range(cfg.n_heads)]


def parse_head(name: str) -> tuple[int, int]:
    m = _HEAD.match(name.strip())
    if not m:
        raise ValueError(f"{name!r} is not a head name like L1H3")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Prediction:
    tokens: tuple[str, ...]
    probs: tuple[float, ...]


@dataclass(frozen=True)
class AblationOutcome:
    clean: Prediction
    ablated: Prediction
    clean_loss: float
    ablated_loss: float
    kl: float  # KL(clean || ablated) of the next-token distribution
    ablated_names: tuple[str, ...] = ()  # what was ablated (L1H3, ATTN0, MLP1, L0N12); empty: nothing
    ablations: tuple[Ablation, ...] = ()  # the same, as circuits.ablation.Ablation


_LAYER = re.compile(r"^(ATTN|MLP)(\d+)$")
_NEURON = re.compile(r"^L(-?\d+)N(-?\d+)$", re.IGNORECASE)


def has_mlp(cfg) -> bool:
    """Whether the model's blocks have MLPs (an attention-only model has no neurons)."""
    return not cfg.attn_only and bool(cfg.d_mlp)


def layer_names(cfg) -> list[str]:
    """Whole layers that can be ablated: ``ATTN{l}`` (every head and ``b_O``: ``hook_attn_out``)
    and, for a model with MLPs, ``MLP{l}`` (``hook_mlp_out``)."""
    names = [f"ATTN{l}" for l in range(cfg.n_layers)]
    return names + ([f"MLP{l}" for l in range(cfg.n_layers)] if has_mlp(cfg) else [])


def parse_layer(name: str) -> tuple[str, int]:
    """``"ATTN1"`` -> ``("attn", 1)``; ``"MLP0"`` -> ``("mlp", 0)``."""
    m = _LAYER.match(name.strip())
    if not m:
        raise ValueError(f"{name!r} is not a layer name like ATTN1 or MLP0")
    return m.group(1).lower(), int(m.group(2))


def parse_neurons(text, cfg) -> list[tuple[int, int]]:
    """``"L0N12, L1N5"`` (commas, semicolons or spaces between) -> ``[(0, 12), (1, 5)]``, in
    order, without repeats. A PromptError names the first bad item: ``neuron_syntax`` (not
    ``L<layer>N<neuron>``), ``neuron_out_of_range`` (negative, or past the model's layers or
    ``d_mlp``), ``no_mlp`` (neurons asked of an attention-only model). A list of names or
    ``(layer, neuron)`` pairs is accepted too."""
    if text is None:
        return []
    if isinstance(text, str):
        items = [s for s in re.split(r"[,;\s]+", text) if s]
    else:
        items = [f"L{x[0]}N{x[1]}" if isinstance(x, (tuple, list)) else str(x) for x in text]
    if items and not has_mlp(cfg):
        raise PromptError("no_mlp")
    out: list[tuple[int, int]] = []
    for item in items:
        m = _NEURON.match(item)
        if not m:
            raise PromptError("neuron_syntax", item=item)
        layer, neuron = int(m.group(1)), int(m.group(2))
        if not (0 <= layer < cfg.n_layers and 0 <= neuron < cfg.d_mlp):
            raise PromptError("neuron_out_of_range", item=item, n_layers=cfg.n_layers - 1, d_mlp=cfg.d_mlp - 1)
        if (layer, neuron) not in out:
            out.append((layer, neuron))
    return out


def ablation_list(cfg, heads=(), layers=(), neurons="", kind: str = "zero") -> tuple[list[str], list[Ablation]]:
    """(names, ``Ablation``s) of the heads (``L1H3``), whole layers (``ATTN1``, ``MLP0``) and
    neurons (text ``"L0N12, L1N5"`` or pairs) to ablate with ``kind``."""
    if kind not in ABLATION_KINDS:
        raise ValueError(f"kind must be one of {ABLATION_KINDS}, not {kind!r}")
    names: list[str] = []
    out: list[Ablation] = []
    for h in dict.fromkeys(heads or ()):
        layer, head = parse_head(h)
        if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
            raise PromptError("head_out_of_range", n_layers=cfg.n_layers - 1, n_heads=cfg.n_heads - 1)
        names.append(f"L{layer}H{head}")
        out.append(Ablation("head", layer, head, kind=kind))
    for name in dict.fromkeys(layers or ()):
        target, layer = parse_layer(name)
        if not 0 <= layer < cfg.n_layers:
            raise ValueError(f"{name!r}: the model has layers 0..{cfg.n_layers - 1}")
        if target == "mlp" and not has_mlp(cfg):
            raise PromptError("no_mlp")
        names.append(f"{target.upper()}{layer}")
        out.append(Ablation(target, layer, kind=kind))
    for layer, neuron in parse_neurons(neurons, cfg):
        names.append(f"L{layer}N{neuron}")
        out.append(Ablation("neuron", layer, neuron, kind=kind))
    return names, out


def _tokens(model, prompt: str, field: str = "prompt") -> torch.Tensor:
    return prompt_tokens(model, prompt, field)


def _top(model, logits: torch.Tensor, k: int) -> Prediction:
    probs = torch.softmax(logits.float(), -1)
    top = torch.topk(probs, k)
    return Prediction(tuple(model.to_str_tokens(top.indices)), tuple(float(p) for p in top.values))


def ablation_predictions(model, prompt: str, heads: list[str], kind: str = "zero", reference: str = "",
                         k: int = 8, *, layers=(), neurons="") -> AblationOutcome:
    """Top-``k`` next tokens after ``prompt`` with the ``heads`` (names like ``L1H3``), whole
    ``layers`` (``ATTN1``: the attention output; ``MLP0``: the MLP output) and ``neurons`` (text
    like ``"L0N12, L1N5"``, see :func:`parse_neurons`) ablated (``zero``, or ``mean``/``resample``
    over the ``reference`` prompt), next to the normal run. Nothing to ablate: both runs are the
    normal one (``ablated_names`` empty) and no reference is needed."""
    if model.cfg.family != "decoder":
        raise PromptError("decoder_only")
    tokens = _tokens(model, prompt)
    names, ablations = ablation_list(model.cfg, heads, layers, neurons, kind)
    ref = None
    if kind != "zero" and ablations:
        if not reference or not reference.strip():
            raise PromptError("no_reference")
        ref = model.to_tokens(reference)
        if kind == "resample" and ref.shape[1] != tokens.shape[1]:
            raise PromptError("reference_length", n=int(tokens.shape[1]), m=int(ref.shape[1]))
    r = ablate(model, tokens, ablations, reference=ref)
    clean_last, ablated_last = r.clean_logits[0, -1], r.logits[0, -1]
    logp_c, logp_a = torch.log_softmax(clean_last.float(), -1), torch.log_softmax(ablated_last.float(), -1)
    kl = float((logp_c.exp() * (logp_c - logp_a)).sum())
    return AblationOutcome(_top(model, clean_last, k), _top(model, ablated_last, k), r.clean_loss, r.loss, kl,
                           tuple(names), tuple(ablations))


@dataclass(frozen=True)
class SweepTable:
    values: np.ndarray  # normalized: 1 = clean restored, 0 = corrupted
    rows: list[str]
    columns: list[str]
    row_axis: str
    column_axis: str
    clean: float
    corrupted: float


def single_token(model, text: str, field: str) -> int:
    try:
        return model.to_single_token(text)
    except ValueError as err:
        raise PromptError("not_one_token", field=field, text=text) from err


def sweep_runs(model, n_positions: int, sweep: str) -> int:
    """Patched forward passes a sweep takes (attribution patching: three passes, whatever the size)."""
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if sweep in ("resid_pre", "attn_out", "mlp_out"):
        return L * n_positions
    if sweep in ("head_out", "path_head_to_logits"):
        return L * H
    return 3


def _out_of_memory(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(err, oom):
        return True
    text = str(err).lower()
    return isinstance(err, (RuntimeError, MemoryError)) and (
        isinstance(err, MemoryError) or "out of memory" in text or "can't allocate memory" in text)


def patching_sweep(model, clean_prompt: str, corrupted_prompt: str, answer: str, wrong: str, sweep: str,
                   progress: Optional[Callable[[int, int], None]] = None) -> SweepTable:
    """Denoising patching (corrupted run, clean activations patched in) with the logit difference
    ``answer - wrong`` at the last position, normalized so that 1 = clean, 0 = corrupted.
    ``path_head_to_logits`` is path patching (Wang et al.) from each head alone to the final
    residual stream, as the share of the clean -> corrupted change that path carries.

    Server limits (``ui.settings``): a sweep of more than ``max_sweep_runs`` patched runs is
    refused before it starts; patched runs are batched ``sweep_batch_rows`` at a time, halved
    after an out-of-memory error (down to 1), and only then reported (``out_of_memory``)."""
    if sweep not in SWEEPS:
        raise ValueError(f"sweep must be one of {SWEEPS}, not {sweep!r}")
    if model.cfg.family != "decoder":
        raise PromptError("decoder_only")
    clean, corrupted = _tokens(model, clean_prompt, "clean"), _tokens(model, corrupted_prompt, "corrupted")
    if clean.shape != corrupted.shape:
        raise PromptError("length_mismatch", n=int(clean.shape[1]), m=int(corrupted.shape[1]))
    metric = LogitDiff(single_token(model, answer, "answer"), single_token(model, wrong, "wrong"))
    limits = settings.current()
    runs = sweep_runs(model, int(clean.shape[1]), sweep)
    if runs > limits.max_sweep_runs:
        raise PromptError("sweep_too_large", n=runs, limit=limits.max_sweep_runs)
    device = model.W_E.device
    clean, corrupted = clean.to(device), corrupted.to(device)
    rows = limits.sweep_batch_rows
    while True:
        try:
            return _sweep_table(model, clean, corrupted, metric, sweep, progress, rows)
        except PromptError:
            raise
        except Exception as err:  # noqa: BLE001 - only out-of-memory is retried
            if not _out_of_memory(err):
                raise
            release_memory()
            if rows <= 1:
                raise PromptError("out_of_memory", rows=rows) from err
            rows = max(1, rows // 2)


def _sweep_table(model, clean, corrupted, metric, sweep, progress, max_rows) -> SweepTable:
    with torch.no_grad():
        _, cache = model.run_with_cache(clean, names_filter=lambda n: n.endswith(
            ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_z")))
    kw = dict(source_tokens=clean, progress=progress, max_rows=max_rows)
    try:
        if sweep == "resid_pre":
            result = patch_residual(model, corrupted, cache, metric, "pre", **kw)
        elif sweep in ("attn_out", "mlp_out"):
            result = patch_layer_outputs(model, corrupted, cache, metric, sweep.split("_")[0], **kw)
        elif sweep == "head_out":
            result = patch_head_outputs(model, corrupted, cache, metric, **kw)
        elif sweep == "path_head_to_logits":
            from circuits.path_patching import path_patching_sweep

            result = path_patching_sweep(model, clean, corrupted, metric, progress=progress)
            if abs(result.source - result.baseline) < 1e-6:
                raise PromptError("no_difference")
            # share of the clean -> corrupted change carried by the head's direct path to the logits
            carried = ((result.baseline - result.values) / (result.baseline - result.source)).numpy()
            return SweepTable(carried, result.labels["layer"], result.labels["head"], "layer", "head",
                              result.baseline, result.source)
        else:
            result = attribution_patching(model, clean, corrupted, metric, sweep.removeprefix("attribution_"))
    except PatchingInputError as err:
        raise PromptError("length_mismatch", n=int(clean.shape[1]), m=int(corrupted.shape[1])) from err
    if abs(result.source - result.baseline) < 1e-6:
        raise PromptError("no_difference")
    values = result.normalized().numpy()
    column_axis = result.axes[1]
    return SweepTable(values, result.labels["layer"], result.labels[column_axis], "layer", column_axis,
                      result.source, result.baseline)
