"""Attention patterns of a prompt: pure functions, no Streamlit.

The UI caches the result of :func:`compute_attention_patterns` per
(model, prompt) so that switching layer or head never reruns the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class PromptError(ValueError):
    """A prompt the model cannot run on; ``code`` names the UI message to show."""

    def __init__(self, code: str, **details: object):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class AttentionPatterns:
    """All attention patterns of one prompt, on the CPU.

    ``patterns[layer, head, query_pos, key_pos]`` is the weight that the query
    token at ``query_pos`` gives to the key token at ``key_pos``.
    """

    str_tokens: tuple[str, ...]
    patterns: np.ndarray  # float32 [n_layers, n_heads, query_pos, key_pos]

    @property
    def n_layers(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.patterns.shape[1])

    def head(self, layer: int, head: int) -> np.ndarray:
        """The ``[query_pos, key_pos]`` pattern of one attention head."""
        return self.patterns[layer, head]


def pattern_hook_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def _is_pattern_hook(name: str) -> bool:
    return name.endswith("hook_pattern")


def compute_attention_patterns(model, prompt: str) -> AttentionPatterns:
    """Run ``model`` once on ``prompt`` and return every layer's attention patterns.

    Hooks are added by ``run_with_cache`` for this call only and removed by it,
    so the (shared) model is left without hooks. Raises :class:`PromptError`
    with code ``empty_prompt``, ``no_tokenizer`` or ``prompt_too_long``.
    """
    if not prompt or not prompt.strip():
        raise PromptError("empty_prompt")
    if getattr(model, "tokenizer", None) is None:
        raise PromptError("no_tokenizer")

    tokens = model.to_tokens(prompt)
    n_tokens = int(tokens.shape[-1])
    n_ctx = int(model.cfg.n_ctx)
    if n_tokens > n_ctx:
        raise PromptError("prompt_too_long", n=n_tokens, n_ctx=n_ctx)

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=_is_pattern_hook)
    per_layer = [cache[pattern_hook_name(layer)][0] for layer in range(model.cfg.n_layers)]
    patterns = torch.stack(per_layer).detach().to("cpu", torch.float32).numpy()
    del cache

    str_tokens = list(model.to_str_tokens(prompt))
    if len(str_tokens) != n_tokens:
        # Should not happen; keep the figure usable rather than failing.
        str_tokens = [f"tok{i}" for i in range(n_tokens)]
    return AttentionPatterns(str_tokens=tuple(str_tokens), patterns=patterns)
