"""Attention patterns of a prompt: pure functions, no Streamlit.

The UI caches the result of :func:`compute_attention_patterns` per (model, prompt, target) so
that switching attention kind, layer or head never reruns the model.

A decoder-only or encoder-only model has one kind of attention, ``"self"``
(``blocks.{l}.attn.hook_pattern``). An encoder-decoder has three: ``"encoder"`` self-attention
over the source, ``"decoder"`` (causal) self-attention over the target, and ``"cross"``
attention from each target token to the source tokens
(``decoder.blocks.{l}.cross_attn.hook_pattern``). Its target is the text the user gave, or, when
none is given, the model's own greedy output for the source (a translation, for a translator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


class PromptError(ValueError):
    """A prompt the model cannot run on; ``code`` names the UI message to show."""

    def __init__(self, code: str, **details: object):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


# kind -> hook name of layer {l}'s pattern
HOOKS: dict[str, str] = {
    "self": "blocks.{l}.attn.hook_pattern",
    "encoder": "encoder.blocks.{l}.attn.hook_pattern",
    "decoder": "decoder.blocks.{l}.attn.hook_pattern",
    "cross": "decoder.blocks.{l}.cross_attn.hook_pattern",
}


def attention_kinds(cfg) -> tuple[str, ...]:
    """The kinds of attention a model has, in the order the UI offers them."""
    return ("encoder", "decoder", "cross") if cfg.family == "encoder-decoder" else ("self",)


@dataclass(frozen=True)
class AttentionSet:
    """All patterns of one kind of attention, on the CPU.

    ``patterns[layer, head, query_pos, key_pos]`` is the weight that the query token at
    ``query_pos`` gives to the key token at ``key_pos``; queries are ``query_tokens`` and keys
    ``key_tokens`` (the same tokens except for cross-attention: target queries, source keys).
    """

    kind: str
    patterns: np.ndarray  # float32 [n_layers, n_heads, query_pos, key_pos]
    query_tokens: tuple[str, ...]
    key_tokens: tuple[str, ...]

    @property
    def n_layers(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.patterns.shape[1])

    def head(self, layer: int, head: int) -> np.ndarray:
        """The ``[query_pos, key_pos]`` pattern of one attention head."""
        return self.patterns[layer, head]

    def hook_name(self, layer: int) -> str:
        return HOOKS[self.kind].format(l=layer)


@dataclass(frozen=True)
class AttentionPatterns:
    """Every attention pattern of one forward pass, grouped by kind of attention.

    ``target_text`` is the decoder's text of an encoder-decoder (``generated`` tells whether
    the model produced it), None otherwise. The single-kind accessors (``str_tokens``,
    ``patterns``, ``head``) read the first kind: the only one of a decoder or an encoder.
    """

    sets: dict[str, AttentionSet]
    target_text: Optional[str] = None
    generated: bool = False

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.sets)

    def __getitem__(self, kind: str) -> AttentionSet:
        return self.sets[kind]

    @property
    def first(self) -> AttentionSet:
        return next(iter(self.sets.values()))

    @property
    def str_tokens(self) -> tuple[str, ...]:
        return self.first.query_tokens

    @property
    def patterns(self) -> np.ndarray:
        return self.first.patterns

    @property
    def n_layers(self) -> int:
        return self.first.n_layers

    @property
    def n_heads(self) -> int:
        return self.first.n_heads

    def head(self, layer: int, head: int, kind: Optional[str] = None) -> np.ndarray:
        return (self.sets[kind] if kind else self.first).head(layer, head)

    @property
    def nbytes(self) -> int:
        """Memory held by the patterns (what the server's pattern cache counts)."""
        return sum(s.patterns.nbytes for s in self.sets.values())


def pattern_hook_name(layer: int, kind: str = "self") -> str:
    return HOOKS[kind].format(l=layer)


def _is_pattern_hook(name: str) -> bool:
    return name.endswith("hook_pattern")


_LAYER = re.compile(r"blocks\.(\d+)\.")


def _stack(cache, kind: str) -> np.ndarray:
    """[n_layers, n_heads, q, k] of one kind, from batch row 0 of the cache."""
    template = HOOKS[kind]
    names = sorted(
        (n for n in cache.keys() if _LAYER.sub("blocks.{l}.", n, count=1) == template),
        key=lambda n: int(_LAYER.search(n).group(1)),
    )
    return torch.stack([cache[n][0] for n in names]).detach().to("cpu", torch.float32).numpy()


def _str_tokens(model, ids: torch.Tensor) -> tuple[str, ...]:
    return tuple(model.to_str_tokens(ids.flatten()))


def _check_length(tokens: torch.Tensor, n_ctx: int) -> None:
    from ui.prompts import check_length

    check_length(int(tokens.shape[-1]), n_ctx)


def compute_attention_patterns(
    model, prompt: str, target: Optional[str] = None, max_new_tokens: int = 48
) -> AttentionPatterns:
    """Run ``model`` once on ``prompt`` and return every attention pattern.

    For an encoder-decoder, ``prompt`` is the source and ``target`` the decoder's text; with no
    target, the model first decodes greedily (at most ``max_new_tokens``) and the patterns are
    those of its own output. Hooks are added by ``run_with_cache`` for this call only and removed
    by it, so the (shared) model is left without hooks. Raises :class:`PromptError` with code
    ``empty_prompt``, ``no_tokenizer``, ``no_tokens``, ``prompt_too_long`` ... (``ui.prompts``).
    """
    from ui.prompts import check_text, prompt_tokens

    cfg = model.cfg
    device = cfg.device or "cpu"
    tokens = prompt_tokens(model, prompt).to(device)

    if cfg.family != "encoder-decoder":
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=_is_pattern_hook)
        toks = _str_tokens(model, tokens)
        return AttentionPatterns({"self": AttentionSet("self", _stack(cache, "self"), toks, toks)})

    generated = not (target and target.strip())
    if generated:
        budget = max(1, min(max_new_tokens, int(cfg.n_ctx) - 1))
        tgt = model.generate(tokens, max_new_tokens=budget)
    else:
        from models.tokens import to_target_tokens_and_mask

        tgt = to_target_tokens_and_mask(model, check_text(target, "target"))[0].to(device)
    _check_length(tgt, int(cfg.n_ctx))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, tgt, names_filter=_is_pattern_hook)
    src_toks, tgt_toks = _str_tokens(model, tokens), _str_tokens(model, tgt)
    sets = {
        "encoder": AttentionSet("encoder", _stack(cache, "encoder"), src_toks, src_toks),
        "decoder": AttentionSet("decoder", _stack(cache, "decoder"), tgt_toks, tgt_toks),
        "cross": AttentionSet("cross", _stack(cache, "cross"), tgt_toks, src_toks),
    }
    text = model.tokenizer.decode(tgt[0].tolist(), skip_special_tokens=True).strip()
    return AttentionPatterns(sets, target_text=text, generated=generated)


def detector_scores(model, prompt: str) -> dict[str, np.ndarray]:
    """Head-detector scores (previous-token, duplicate-token, induction, first-token) of every
    head on ``prompt``, ``[n_layers, n_heads]`` each (decoder and encoder models)."""
    from circuits.heads import head_detector_scores

    from ui.prompts import prompt_tokens

    if model.cfg.family == "encoder-decoder":
        raise PromptError("detectors_single_stack")
    tokens = prompt_tokens(model, prompt)
    scores = head_detector_scores(model, tokens)
    return {name: s.float().cpu().numpy() for name, s in scores.scores.items()}
