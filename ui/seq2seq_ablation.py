"""Ablation of an encoder-decoder's heads, read on its translation (no Streamlit).

The decoder-only ablation of the "Ablate & patch" page (``ui.interventions``) reads the next
token; an encoder-decoder's behaviour is its whole output. :func:`translation_ablation` zeroes
the chosen heads' outputs ``z`` (encoder self-attention ``EL{l}H{h}``, decoder self-attention
``DL{l}H{h}``, cross-attention ``CL{l}H{h}``; the labels of ``circuits.heads.head_labels``) and
compares, with and without them:

* the greedy translation of the source text (``model.generate``, stopped at the context);
* the probability of each token of the *normal* translation, teacher-forced, and their mean
  negative log-probability (the loss of the normal translation).

Zeroing a head's ``z`` keeps its layer's bias ``b_O``, as ``circuits.ablation`` does. The hooks
are temporary (``model.hooks``): the shared model never keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from circuits.heads import attention_hook_name, head_labels
from ui.patterns import PromptError
from ui.prompts import prompt_tokens

KINDS = {"E": "encoder", "D": "decoder", "C": "cross"}
_LABEL = re.compile(r"^([EDC])L(\d+)H(\d+)$")
MAX_NEW_TOKENS = 48


def seq2seq_head_names(model) -> list[str]:
    """Every head of an encoder-decoder: encoder, decoder, then cross-attention heads."""
    return [name for kind in KINDS.values() for name in head_labels(model, kind)]


def ablation_hooks(model, heads: list[str]) -> list[tuple[str, object]]:
    """Forward hooks that zero the ``z`` of each named head."""
    valid = set(seq2seq_head_names(model))
    by_hook: dict[str, list[int]] = {}
    for name in heads:
        m = _LABEL.match(str(name).strip())
        if not m or name not in valid:
            raise PromptError("unknown_head", item=str(name))
        hook = attention_hook_name(KINDS[m.group(1)], int(m.group(2)), "hook_z")
        by_hook.setdefault(hook, []).append(int(m.group(3)))

    def zero(indices):
        def hook_fn(z, hook):  # [batch, pos, head, d_head]
            z = z.clone()  # never write into a tensor autograd may still need
            z[:, :, indices] = 0.0
            return z
        return hook_fn

    return [(hook, zero(sorted(set(indices)))) for hook, indices in by_hook.items()]


@dataclass(frozen=True)
class TranslationAblation:
    ablated_names: tuple[str, ...]
    normal_text: str
    ablated_text: str
    tokens: tuple[str, ...]  # the normal translation's tokens (after the start token)
    normal_probs: np.ndarray  # [token]: each one's probability in the normal run (teacher-forced)
    ablated_probs: np.ndarray  # [token]: the same tokens' probability with the heads ablated
    normal_loss: float  # mean -log p of the normal translation, normal run
    ablated_loss: float  # the same, ablated run


def _text(model, ids: torch.Tensor) -> str:
    return model.tokenizer.decode(ids[0].tolist(), skip_special_tokens=True).strip()


def _token_probs(model, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """p(tgt[t+1] | src, tgt[:t+1]) for every t, float64."""
    logits = model(src, tgt)[0, :-1].double()
    return torch.softmax(logits, -1).gather(-1, tgt[0, 1:, None])[:, 0]


def translation_ablation(model, source: str, heads: list[str]) -> TranslationAblation:
    """The model's translation of ``source`` with and without the ``heads`` zeroed."""
    if model.cfg.family != "encoder-decoder":
        raise PromptError("seq2seq_only")
    src = prompt_tokens(model, source, "prompt")
    hooks = ablation_hooks(model, list(heads))
    with torch.no_grad():
        normal = model.generate(src, max_new_tokens=MAX_NEW_TOKENS)
        if normal.shape[1] < 2:
            raise PromptError("no_tokens")
        normal_probs = _token_probs(model, src, normal)
        if hooks:
            with model.hooks(fwd_hooks=hooks):
                ablated = model.generate(src, max_new_tokens=MAX_NEW_TOKENS)
                ablated_probs = _token_probs(model, src, normal)
        else:
            ablated, ablated_probs = normal, normal_probs
    tiny = torch.finfo(torch.float64).tiny
    return TranslationAblation(
        ablated_names=tuple(heads),
        normal_text=_text(model, normal),
        ablated_text=_text(model, ablated),
        tokens=tuple(model.to_str_tokens(normal[0, 1:])),
        normal_probs=normal_probs.float().cpu().numpy(),
        ablated_probs=ablated_probs.float().cpu().numpy(),
        normal_loss=float(-normal_probs.clamp_min(tiny).log().mean()),
        ablated_loss=float(-ablated_probs.clamp_min(tiny).log().mean()),
    )
