"""Greedy decoding with a key/value cache, for decoder-only and encoder-decoder models.

Each step feeds only the newest token; every self-attention layer appends that token's key and
value to the cache (:class:`~models.components.attention.KVCache`) and cross-attention reuses
the encoder output's keys and values, computed once. ``use_cache=False`` recomputes the whole
sequence each step and must give the same tokens: the test of the cache.

The rules follow Hugging Face's ``generate(num_beams=1, do_sample=False)``: a sequence that has
produced EOS is continued with the pad token until every sequence has finished;
``forced_bos_token_id`` / ``forced_eos_token_id`` from the config force the first token / the
token at the maximum length (BART).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from models import tokens as tok
from models.components.attention import KVCache

_FROM_CONFIG = -1


def _left_pad(tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Move right padding to the left, so every prompt ends at the last column."""
    lengths = mask.sum(-1)
    width = tokens.shape[1]
    out_t, out_m = torch.empty_like(tokens), torch.zeros_like(mask)
    for i, n in enumerate(lengths.tolist()):
        out_t[i, width - n :], out_m[i, width - n :] = tokens[i, :n], 1
        out_t[i, : width - n] = tokens[i, n] if n < width else 0
    return out_t, out_m


def _force(logits: Tensor, cur_len: int, max_len: int, cfg) -> Tensor:
    forced = None
    if cfg.forced_bos_token_id is not None and cur_len == 1:
        forced = cfg.forced_bos_token_id
    if cfg.forced_eos_token_id is not None and cur_len == max_len - 1:
        forced = cfg.forced_eos_token_id
    if forced is None:
        return logits
    out = torch.full_like(logits, float("-inf"))
    out[:, forced] = 0.0
    return out


@torch.no_grad()
def greedy_generate(
    model,
    input: Union[str, list[str], Tensor],
    max_new_tokens: int = 20,
    *,
    attention_mask: Optional[Tensor] = None,
    use_cache: bool = True,
    eos_token_id: Optional[int] = _FROM_CONFIG,
    pad_token_id: Optional[int] = None,
    decoder_start_token_id: Optional[int] = None,
) -> Tensor:
    cfg = model.cfg
    if cfg.family == "encoder":
        raise ValueError("an encoder-only model does not generate text; use a decoder or an encoder-decoder.")
    if not cfg.has_logits:
        raise ValueError("this model has no output head, so it cannot generate.")
    device = cfg.device or "cpu"
    seq2seq = cfg.family == "encoder-decoder"
    if isinstance(input, (str, list)):
        input, attention_mask = tok.to_tokens_and_mask(model, input)
        if not seq2seq:
            input, attention_mask = _left_pad(input, attention_mask)
        input, attention_mask = input.to(device), attention_mask.to(device)
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    if eos_token_id == _FROM_CONFIG:
        eos_token_id = cfg.eos_token_id
        if eos_token_id is None and model.tokenizer is not None:
            eos_token_id = model.tokenizer.eos_token_id
    if pad_token_id is None:
        pad_token_id = cfg.pad_token_id if cfg.pad_token_id is not None else eos_token_id
    batch = input.shape[0]

    with model._lock:
        cache = KVCache() if use_cache else None
        if seq2seq:
            encoder_out = model.encode(input, attention_mask)
            start = decoder_start_token_id if decoder_start_token_id is not None else model._decoder_start()
            seq = torch.full((batch, 1), start, dtype=torch.long, device=input.device)
            mask = None
        else:
            seq, mask = input, attention_mask
        # never past the context: a position table has n_ctx rows (a run-away output, e.g. of an
        # ablated model that never says EOS, stops there instead of failing)
        max_new_tokens = max(0, min(int(max_new_tokens), int(cfg.n_ctx) - seq.shape[1]))
        max_len = seq.shape[1] + max_new_tokens
        finished = torch.zeros(batch, dtype=torch.bool, device=input.device)
        step_input = seq
        for _ in range(max_new_tokens):
            feed = step_input if use_cache else seq
            if seq2seq:
                logits = model.forward_seq2seq(
                    input, feed, attention_mask=attention_mask, encoder_out=encoder_out, past_key_values=cache
                )
            else:
                logits = model.forward_single(feed, attention_mask=mask, past_key_values=cache)
            next_logits = _force(logits[:, -1].float(), seq.shape[1], max_len, cfg)
            next_token = next_logits.argmax(-1)
            if eos_token_id is not None:
                next_token = torch.where(finished, torch.full_like(next_token, pad_token_id), next_token)
                finished |= next_token == eos_token_id
            seq = torch.cat([seq, next_token[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step_input = next_token[:, None]
            if bool(finished.all()):
                break
    return seq
