"""Induction-circuit metrics, measured with hooks only (``run_with_cache``).

Held-out probe: ``[BOS] + R + R`` where R is ``length`` distinct random word tokens (never a
special token). With positions 0 = BOS, 1..L = first copy, L+1..2L = second copy:

* ``second_copy_loss``: mean next-token loss on the second copy, tokens at positions L+2..2L
  (the first token of the second copy follows the end of the first copy and cannot be
  predicted, so it is left out). A working induction circuit makes it small.
* ``first_copy_loss``: the same on tokens at positions 2..L of the first copy. These are fresh
  random words, so the best possible loss is about log(number of words).
* ``induction_score[layer, head]``: mean attention from each token of the second copy (query
  position q = L+1+j) to the token right after its earlier occurrence (key q - L + 1).
* ``prev_token_score[layer, head]``: mean attention from each position q >= 1 to q - 1.

Head scores are averaged over all the lengths probed (each length weighted equally). The
probe is seeded, so the same model and arguments give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

# A head "is" an induction / previous-token head when its score reaches these.
INDUCTION_THRESHOLD = 0.7
PREV_TOKEN_THRESHOLD = 0.7
SECOND_COPY_MAX_LOSS = 0.5
EVAL_SEED = 12345  # probe sequences; training data uses other generators, so these are held out


def head_name(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def max_repeat_length(n_ctx: int) -> int:
    """Longest R such that [BOS] + R + R fits in the context."""
    return (n_ctx - 1) // 2


def word_ids(tokenizer, d_vocab: int) -> list[int]:
    """Token ids that are ordinary words (every id except the tokenizer's special tokens)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or []) if tokenizer is not None else set()
    return [i for i in range(d_vocab) if i not in special]


def repeated_sequences(
    bos_id: int, words: Sequence[int], length: int, n: int, seed: int = EVAL_SEED
) -> torch.Tensor:
    """[n, 1 + 2*length] tensor of ``[BOS] + R + R``, R = ``length`` distinct words, seeded."""
    if length > len(words):
        raise ValueError(f"length {length} exceeds the {len(words)} words available")
    gen = torch.Generator().manual_seed(seed * 1000 + length)
    words_t = torch.as_tensor(list(words), dtype=torch.long)
    # n random permutations of the word list; the first `length` of each are distinct words
    keys = torch.rand(n, len(words_t), generator=gen)
    r = words_t[keys.argsort(dim=-1)[:, :length]]
    bos = torch.full((n, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)


@dataclass
class InductionReport:
    lengths: list[int]
    d_vocab: int
    n_words: int
    second_copy_loss: dict[int, float]  # per length
    first_copy_loss: dict[int, float]  # per length
    induction_score: torch.Tensor  # [n_layers, n_heads], mean over lengths
    prev_token_score: torch.Tensor  # [n_layers, n_heads], mean over lengths
    induction_score_by_length: dict[int, list[list[float]]] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return self.induction_score.shape[0]

    @property
    def n_heads(self) -> int:
        return self.induction_score.shape[1]

    def induction_heads(self, threshold: float = INDUCTION_THRESHOLD) -> list[str]:
        """Heads in layers >= 1 whose induction score reaches ``threshold``, best first."""
        return self._heads(self.induction_score, threshold, layers=range(1, self.n_layers))

    def previous_token_heads(self, threshold: float = PREV_TOKEN_THRESHOLD) -> list[str]:
        """Heads in layer 0 whose previous-token score reaches ``threshold``, best first."""
        return self._heads(self.prev_token_score, threshold, layers=range(0, 1))

    @staticmethod
    def _heads(scores: torch.Tensor, threshold: float, layers) -> list[str]:
        found = [(float(scores[l, h]), l, h) for l in layers for h in range(scores.shape[1]) if scores[l, h] >= threshold]
        return [head_name(l, h) for _, l, h in sorted(found, key=lambda t: (-t[0], t[1], t[2]))]

    def heads_json(self) -> dict:
        return {
            "induction_heads": self.induction_heads(),
            "previous_token_heads": self.previous_token_heads(),
            "thresholds": {"induction_score": INDUCTION_THRESHOLD, "previous_token_score": PREV_TOKEN_THRESHOLD},
            "induction_score": {
                head_name(l, h): round(float(self.induction_score[l, h]), 4)
                for l in range(self.n_layers)
                for h in range(self.n_heads)
            },
            "previous_token_score": {
                head_name(l, h): round(float(self.prev_token_score[l, h]), 4)
                for l in range(self.n_layers)
                for h in range(self.n_heads)
            },
            "probe": {
                "sequences": "[BOS] + R + R, R = distinct random words",
                "lengths": [min(self.lengths), max(self.lengths)],
                "seed": EVAL_SEED,
            },
        }

    def problems(self) -> list[str]:
        """Failed criteria, as sentences (empty when the model is a working induction model)."""
        problems = []
        bad = {L: v for L, v in self.second_copy_loss.items() if not v < SECOND_COPY_MAX_LOSS}
        if bad:
            problems.append(f"second-copy loss >= {SECOND_COPY_MAX_LOSS} at lengths {sorted(bad)}")
        half = 0.5 * math.log(self.n_words)
        low = {L: v for L, v in self.first_copy_loss.items() if not v > half}
        if low:
            problems.append(f"first-copy loss <= 0.5*log(words) at lengths {sorted(low)}")
        if not self.induction_heads():
            problems.append(f"no layer-1 head with induction score >= {INDUCTION_THRESHOLD}")
        if not self.previous_token_heads():
            problems.append(f"no layer-0 head with previous-token score >= {PREV_TOKEN_THRESHOLD}")
        return problems


@torch.no_grad()
def measure(
    model,
    lengths: Optional[Sequence[int]] = None,
    n_per_length: int = 64,
    seed: int = EVAL_SEED,
    bos_id: Optional[int] = None,
) -> InductionReport:
    """Losses on both copies and every head's induction / previous-token score, from hooks."""
    cfg = model.cfg
    tokenizer = getattr(model, "tokenizer", None)
    if bos_id is None:
        bos_id = tokenizer.bos_token_id
    words = word_ids(tokenizer, cfg.d_vocab)
    if lengths is None:
        lengths = range(3, max_repeat_length(cfg.n_ctx) + 1)
    lengths = [int(L) for L in lengths]
    device = next(model.parameters()).device
    pattern_names = {f"blocks.{l}.attn.hook_pattern" for l in range(cfg.n_layers)}

    second, first, ind_by_len = {}, {}, {}
    ind_total = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    prev_total = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    for L in lengths:
        tokens = repeated_sequences(bos_id, words, L, n_per_length, seed).to(device)
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in pattern_names)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        # nll[:, p] is the loss of predicting token p + 1 from positions <= p
        nll = -log_probs[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        first[L] = float(nll[:, 1:L].mean())  # tokens at positions 2..L
        second[L] = float(nll[:, L + 1 : 2 * L].mean())  # tokens at positions L+2..2L
        q = torch.arange(L + 1, 2 * L + 1, device=device)  # second copy
        q_prev = torch.arange(1, 2 * L + 1, device=device)
        ind_l, prev_l = [], []
        for layer in range(cfg.n_layers):
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"].float()  # [batch, head, q, k]
            ind_l.append(pattern[:, :, q, q - L + 1].mean(dim=(0, 2)).double().cpu())
            prev_l.append(pattern[:, :, q_prev, q_prev - 1].mean(dim=(0, 2)).double().cpu())
        ind, prev = torch.stack(ind_l), torch.stack(prev_l)
        ind_by_len[L] = ind.tolist()
        ind_total += ind
        prev_total += prev
    return InductionReport(
        lengths=lengths,
        d_vocab=cfg.d_vocab,
        n_words=len(words),
        second_copy_loss=second,
        first_copy_loss=first,
        induction_score=(ind_total / len(lengths)).float(),
        prev_token_score=(prev_total / len(lengths)).float(),
        induction_score_by_length=ind_by_len,
    )


def parse_head(name: str) -> tuple[int, int]:
    """"L1H2" -> (1, 2)."""
    layer, head = name.upper().removeprefix("L").split("H")
    return int(layer), int(head)


@torch.no_grad()
def induction_score_without_in_keys(
    model,
    removed: Sequence[str],
    lengths: Optional[Sequence[int]] = None,
    n_per_length: int = 32,
    seed: int = EVAL_SEED,
) -> torch.Tensor:
    """Layer-1 induction scores [n_heads] when layer 1's *keys* are computed from a residual
    stream without the outputs of the layer-0 heads in ``removed`` (queries and values keep
    them). A large drop when ``removed`` are the previous-token heads is K-composition: the
    induction head finds "the token after the earlier A" by the key "my previous token was A"
    that the previous-token head wrote there."""
    cfg = model.cfg
    tokenizer = model.tokenizer
    words = word_ids(tokenizer, cfg.d_vocab)
    heads = [parse_head(name) for name in removed]
    if any(layer != 0 for layer, _ in heads):
        raise ValueError("only layer-0 heads write into layer 1's keys in a 2-layer model")
    if lengths is None:
        lengths = range(3, max_repeat_length(cfg.n_ctx) + 1)
    lengths = [int(L) for L in lengths]
    attn1 = model.blocks[1].attn
    device = next(model.parameters()).device
    total = torch.zeros(cfg.n_heads, dtype=torch.float64)
    for L in lengths:
        tokens = repeated_sequences(tokenizer.bos_token_id, words, L, n_per_length, seed).to(device)
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name in ("blocks.0.attn.hook_result", "blocks.1.hook_resid_pre")
        )
        resid = cache["blocks.1.hook_resid_pre"]
        for _, h in heads:
            resid = resid - cache["blocks.0.attn.hook_result"][:, :, h]
        k_new = torch.einsum("bpm,kmd->bpkd", model.blocks[1].ln1(resid), attn1.W_K) + attn1.b_K
        store = {}

        def replace_k(k, hook):
            return k_new.to(k.dtype)

        def keep_pattern(pattern, hook):
            store["pattern"] = pattern

        model.run_with_hooks(
            tokens,
            fwd_hooks=[("blocks.1.attn.hook_k", replace_k), ("blocks.1.attn.hook_pattern", keep_pattern)],
        )
        q = torch.arange(L + 1, 2 * L + 1, device=device)
        total += store["pattern"].float()[:, :, q, q - L + 1].mean(dim=(0, 2)).double().cpu()
    return (total / len(lengths)).float()
