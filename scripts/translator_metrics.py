"""Translation metrics of the toy Spanish -> English translator, measured with hooks only.

* ``exact_match``: greedy ``model.generate`` on each held-out source; the decoded output must
  equal the reference translation word for word.
* ``alignment``: the reference target is fed to the decoder (teacher forcing) and the
  cross-attention patterns are read from ``decoder.blocks.{l}.cross_attn.hook_pattern``,
  averaged over the layer's heads. For every adjective-noun swap (``el gato negro`` ->
  ``the black cat``), the English adjective's and the English noun's rows must have their
  maximum on the aligned Spanish word.

Which decoder row belongs to an English word? The decoder input is ``<s> w_0 w_1 ...``: the
row of input token ``w_j`` (position ``j + 1``) is the word's own row, the one the attention
page shows under the word's label (``"target word"`` convention, what this model is trained
to align in its last layer). The row *before* it (position ``j``) is the step that predicts
``w_j`` (``"predicting step"`` convention, Bahdanau-style alignment while emitting a word).
Both are reported; the criterion uses the target-word convention on the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from scripts.translation_grammar import Example

EXACT_MATCH_THRESHOLD = 0.95
ALIGNMENT_THRESHOLD = 0.90


def translate(model, sources: Sequence[str], batch_size: int = 128, max_new_tokens: int = 30) -> list[str]:
    """Greedy translations of ``sources`` (decoded without special tokens)."""
    out: list[str] = []
    for i in range(0, len(sources), batch_size):
        chunk = list(sources[i : i + batch_size])
        seq = model.generate(chunk, max_new_tokens=max_new_tokens)
        out += [model.tokenizer.decode(row.tolist(), skip_special_tokens=True).strip() for row in seq]
    return out


def exact_match(model, examples: Sequence[Example]) -> tuple[float, list[tuple[str, str, str]]]:
    """Fraction of exact translations, and the (source, reference, output) of the misses."""
    outputs = translate(model, [e.source for e in examples])
    misses = [(e.source, e.target, o) for e, o in zip(examples, outputs) if o != e.target]
    return 1 - len(misses) / max(1, len(examples)), misses


@dataclass
class AlignmentReport:
    """Per decoder layer: accuracy of the head-averaged cross-attention maximum on swapped words."""

    target_word: list[float]  # [layer] row of the English word itself
    predicting_step: list[float]  # [layer] row of the step that predicts the English word
    n_words: int  # swapped words checked (an adjective and a noun per swap)

    @property
    def last_layer(self) -> float:
        return self.target_word[-1]


def cross_attention(model, examples: Sequence[Example]) -> list[torch.Tensor]:
    """Per example: [n_layers, tgt_pos, src_pos] cross-attention averaged over heads, with the
    reference target fed to the decoder."""
    from models.tokens import to_target_tokens_and_mask

    out = []
    n_layers = model.cfg.n_decoder_layers
    names = [f"decoder.blocks.{l}.cross_attn.hook_pattern" for l in range(n_layers)]
    for ex in examples:
        src = model.to_tokens(ex.source)
        tgt = to_target_tokens_and_mask(model, ex.target)[0]
        with torch.no_grad():
            _, cache = model.run_with_cache(src, tgt, names_filter=lambda n: n in names)
        out.append(torch.stack([cache[n][0].mean(0) for n in names]))
    return out


def alignment(model, examples: Sequence[Example]) -> AlignmentReport:
    """Share of swapped adjectives and nouns whose head-averaged cross-attention row has its
    maximum on the aligned source word, per decoder layer and convention (module docstring)."""
    patterns = cross_attention(model, examples)
    n_layers = model.cfg.n_decoder_layers
    own, pred = [0] * n_layers, [0] * n_layers
    n = 0
    for ex, pat in zip(examples, patterns):
        for es_adj, es_noun, en_adj, en_noun in ex.swaps:
            for es_i, en_j in ((es_adj, en_adj), (es_noun, en_noun)):
                n += 1
                for l in range(n_layers):
                    own[l] += int(pat[l, en_j + 1].argmax()) == es_i
                    pred[l] += int(pat[l, en_j].argmax()) == es_i
    return AlignmentReport([c / max(1, n) for c in own], [c / max(1, n) for c in pred], n)
