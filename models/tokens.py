"""Text <-> token ids for a model's Hugging Face tokenizer (``tokenizer.json``), TransformerLens-style.

Decoder models get a BOS token prepended (``cfg.default_prepend_bos``), as TransformerLens does,
so that position 0 is a fixed "attention sink" rather than the first word. Encoder and
encoder-decoder models use the tokenizer's own special tokens ([CLS] ... [SEP], </s>).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor


class NoTokenizerError(ValueError):
    pass


def _tokenizer(model):
    if model.tokenizer is None:
        raise NoTokenizerError(
            f"Model {model.cfg.model_name!r} has no tokenizer (no tokenizer.json in its folder): "
            "pass token ids instead of text, or add a tokenizer.json next to the weights."
        )
    return model.tokenizer


def _utf8(text: str) -> str:
    """``text`` as a (UTF-8) tokenizer can take it. A Python string may hold surrogate code points,
    which no UTF-8 text can (e.g. half of an emoji cut out of UTF-16 text): a high + low pair
    becomes the character it encodes, a lone surrogate U+FFFD. Any other text is returned as is."""
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def encode(model, text: str, prepend_bos: Optional[bool] = None) -> list[int]:
    t = _tokenizer(model)
    text = _utf8(text)
    if model.cfg.family != "decoder":
        return t.encode(text, add_special_tokens=True)
    ids = t.encode(text, add_special_tokens=False)
    prepend = model.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
    if prepend and t.bos_token_id is not None and (not ids or ids[0] != t.bos_token_id):
        ids = [t.bos_token_id] + ids
    return ids


def pad_id(model) -> int:
    t = _tokenizer(model)
    for candidate in (t.pad_token_id, model.cfg.pad_token_id, t.eos_token_id, t.bos_token_id):
        if candidate is not None:
            return candidate
    return 0


def to_tokens(model, input: Union[str, list[str]], prepend_bos: Optional[bool] = None) -> Tensor:
    """[batch, pos] token ids; a list of texts is right-padded (see ``to_tokens_and_mask``)."""
    return to_tokens_and_mask(model, input, prepend_bos)[0]


def to_tokens_and_mask(model, input: Union[str, list[str]], prepend_bos: Optional[bool] = None) -> tuple[Tensor, Tensor]:
    texts = [input] if isinstance(input, str) else list(input)
    return _pad(model, [encode(model, text, prepend_bos) for text in texts])


def to_target_tokens_and_mask(model, input: Union[str, list[str]]) -> tuple[Tensor, Tensor]:
    """Decoder input of an encoder-decoder for target text: the decoder start token, then the
    text's tokens (no special tokens), right-padded."""
    t = _tokenizer(model)
    texts = [input] if isinstance(input, str) else list(input)
    start = model._decoder_start()
    ids = [[start] + t.encode(_utf8(text), add_special_tokens=False) for text in texts]
    return _pad(model, ids)


def _pad(model, ids: list[list[int]]) -> tuple[Tensor, Tensor]:
    length = max(len(x) for x in ids)
    tokens = torch.full((len(ids), length), pad_id(model), dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return tokens, mask


def to_str_tokens(model, input: Union[str, Tensor, list[int]], prepend_bos: Optional[bool] = None) -> list[str]:
    t = _tokenizer(model)
    if isinstance(input, str):
        ids = encode(model, input, prepend_bos)
    else:
        ids = torch.as_tensor(input).flatten().tolist() if isinstance(input, Tensor) else list(input)
    return [t.decode([i], clean_up_tokenization_spaces=False) for i in ids]


def to_string(model, tokens: Union[Tensor, list[int]]) -> Union[str, list[str]]:
    t = _tokenizer(model)
    if isinstance(tokens, Tensor) and tokens.ndim == 2:
        return [t.decode(row.tolist()) for row in tokens]
    return t.decode(torch.as_tensor(tokens).tolist())


def to_single_token(model, string: str) -> int:
    ids = _tokenizer(model).encode(_utf8(string), add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{string!r} is {len(ids)} tokens for this tokenizer, not one: {ids}")
    return ids[0]
