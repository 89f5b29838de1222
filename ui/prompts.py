"""Checking what a user typed before the model sees it: one place for every page.

Each failure is a :class:`ui.patterns.PromptError` whose ``code`` names a translated message
that says what to do (``error.<code>`` in ``ui/i18n.py``). Limits come from the server's
settings (``ui.settings``): a classroom server may allow fewer tokens than the model's context.
"""

from __future__ import annotations

from typing import Any

import torch

from ui import settings
from ui.patterns import PromptError

# A pasted book is refused before the tokenizer spends time on it: no tokenizer makes fewer
# than one token per this many characters of ordinary text.
CHARS_PER_TOKEN_BOUND = 32


def check_text(text: Any, field: str = "prompt") -> str:
    """``text`` if it is a non-blank string of a sensible size, else a PromptError."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise PromptError("not_text", field=field)
    limit = settings.current().max_prompt_tokens * CHARS_PER_TOKEN_BOUND
    if len(text) > limit:
        raise PromptError("text_too_long", n=len(text), limit=limit)
    if not text.strip():
        raise PromptError("empty_prompt")
    return text


def check_length(n_tokens: int, n_ctx: int) -> None:
    """The model's context, then the server's limit (which may be smaller)."""
    if n_tokens > n_ctx:
        raise PromptError("prompt_too_long", n=n_tokens, n_ctx=n_ctx)
    limit = settings.current().max_prompt_tokens
    if n_tokens > limit:
        raise PromptError("prompt_over_limit", n=n_tokens, limit=limit)


def _special_ids(tokenizer) -> set[int]:
    """BOS/EOS/CLS/SEP/PAD ids: the tokens a model adds, not the text's (unknown words count as
    text: they are shown with a warning, see :func:`unknown_words`)."""
    ids = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or [])}
    unk = getattr(tokenizer, "unk_token_id", None)
    return ids - {unk}


def prompt_tokens(model, text: Any, field: str = "prompt") -> torch.Tensor:
    """``[1, pos]`` token ids of ``text`` for ``model`` (BOS/CLS included as the model expects),
    after every check: text present and not huge, a tokenizer, at least one real token, within
    the model's context and the server's limit."""
    text = check_text(text, field)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise PromptError("no_tokenizer")
    tokens = model.to_tokens(text)
    special = _special_ids(tokenizer)
    if not any(int(i) not in special for i in tokens[0].tolist()):
        raise PromptError("no_tokens")
    check_length(int(tokens.shape[-1]), int(model.cfg.n_ctx))
    return tokens


def unknown_words(model, text: str) -> list[str]:
    """The pieces of ``text`` the tokenizer maps to its unknown token (``<unk>``, ``[UNK]``):
    the model reads them all as the same token. Empty for byte-level tokenizers."""
    tokenizer = getattr(model, "tokenizer", None)
    unk = getattr(tokenizer, "unk_token_id", None)
    if tokenizer is None or unk is None or not isinstance(text, str) or not text.strip():
        return []
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except Exception:  # noqa: BLE001 - a slow tokenizer without offsets: nothing to point at
        return []
    words = []
    for token_id, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"]):
        if token_id == unk and text[start:end] not in words:
            words.append(text[start:end])
    return words


# Demo texts per shipped model and text box (widget key): words the model knows and a behaviour
# it shows. A box without an entry gets the page's translated default (English text, which
# SmolLM2 and MiniLM read). The induction model knows 478 short words (models/zoo/induction-2l);
# on "gato azul tren queso gato azul tren" its induction heads predict "queso", and the
# corrupted text, whose first copy has "perro", makes them predict "perro" instead.
_INDUCTION = "gato azul tren queso gato azul tren"
DEMO_TEXTS: dict[str, dict[str, str]] = {
    "induction-2l": {
        "prompt": "gato azul tren queso luna gato azul tren queso luna",
        "model_prompt": _INDUCTION,
        "abl_prompt": _INDUCTION,
        "abl_reference": "perro rojo casa pan sol perro rojo",
        "p_clean": _INDUCTION,
        "p_corrupted": "gato azul tren perro gato azul tren",
        "p_answer": " queso",
        "p_wrong": " perro",
        "res_prompt": _INDUCTION,
        "res_answer": " queso",
        "res_wrong": " perro",
        "c_tokens": "gato azul tren queso perro luna",
    },
    "translator-es-en": {  # on the residual page its decoder, having written "the black", says "cat"
        "prompt": "el gato negro come el pescado",
        "model_prompt": "el gato negro come el pescado",
        "res_prompt": "el gato negro come el pescado",
        "res_decoder_text": "the black",
        "res_answer": "cat",
        "res_wrong": "dog",
    },
}


def demo_text(model_name: str | None, key: str) -> str | None:
    """The demo text of ``model_name`` for the text box ``key``, or None."""
    return DEMO_TEXTS.get(model_name or "", {}).get(key)
