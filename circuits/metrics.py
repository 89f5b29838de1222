"""Metrics of a forward pass, for ablation and patching (Heimersheim & Nanda 2024).

A metric maps logits ``[batch, pos, d_vocab]`` to a scalar (the mean over the batch), as
TransformerLens's patching functions expect, so every metric here can be passed to them too.
It also says which positions it reads (``positions``): the fast patching sweeps unembed only
those, which for a 50k-token vocabulary is most of the cost of a short prompt.

``normalized(value, clean, corrupted)`` maps a metric so that the clean run is 1 and the
corrupted run 0 (for logit difference and log-probability; KL is 0 at clean by definition).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

TokenIds = Union[int, Sequence[int], Tensor]


def _per_prompt(ids: TokenIds, batch: int, device) -> Tensor:
    t = torch.as_tensor(ids, device=device, dtype=torch.long)
    return t.expand(batch) if t.ndim == 0 else t


class Metric:
    """Base class: subclasses implement :meth:`per_prompt` on the logits of :attr:`positions`."""

    positions: Optional[tuple[int, ...]] = (-1,)  # None: every position
    name: str = "metric"

    def per_prompt(self, logits: Tensor) -> Tensor:
        """``logits[batch, len(positions), d_vocab]`` -> ``[batch]``."""
        raise NotImplementedError

    def on_positions(self, logits: Tensor) -> Tensor:
        """Mean over the batch, from logits already restricted to :attr:`positions`."""
        return self.per_prompt(logits).mean()

    def select(self, logits: Tensor) -> Tensor:
        return logits if self.positions is None else logits[:, list(self.positions)]

    def __call__(self, logits: Tensor) -> Tensor:
        return self.on_positions(self.select(logits))


class LogitDiff(Metric):
    """``logit[answer] - logit[wrong]`` at ``position`` (per prompt: ``answer``/``wrong`` may be
    one id or one id per prompt)."""

    name = "logit difference"

    def __init__(self, answer: TokenIds, wrong: TokenIds, position: int = -1):
        self.answer, self.wrong, self.positions = answer, wrong, (position,)

    def per_prompt(self, logits: Tensor) -> Tensor:
        last = logits[:, 0].float()
        b = last.shape[0]
        a, w = _per_prompt(self.answer, b, last.device), _per_prompt(self.wrong, b, last.device)
        rows = torch.arange(b, device=last.device)
        return last[rows, a] - last[rows, w]


class LogProb(Metric):
    """Log-probability of ``answer`` at ``position``."""

    name = "log-probability"

    def __init__(self, answer: TokenIds, position: int = -1):
        self.answer, self.positions = answer, (position,)

    def per_prompt(self, logits: Tensor) -> Tensor:
        logp = F.log_softmax(logits[:, 0].float(), dim=-1)
        rows = torch.arange(logp.shape[0], device=logp.device)
        return logp[rows, _per_prompt(self.answer, logp.shape[0], logp.device)]


class Loss(Metric):
    """Mean next-token cross-entropy of ``tokens`` (every position; lower is better)."""

    name = "loss"
    positions = None

    def __init__(self, tokens: Tensor, attention_mask: Optional[Tensor] = None):
        self.tokens, self.mask = tokens, attention_mask

    def per_prompt(self, logits: Tensor) -> Tensor:
        logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
        nll = -logp.gather(-1, self.tokens[:, 1:, None].to(logp.device))[..., 0]
        if self.mask is None:
            return nll.mean(-1)
        keep = self.mask[:, 1:].to(nll)
        return (nll * keep).sum(-1) / keep.sum(-1)


class KLDivergence(Metric):
    """KL(reference || run) of the next-token distributions at ``position`` (0 when the run is
    the reference run)."""

    name = "KL divergence"

    def __init__(self, reference_logits: Tensor, position: int = -1):
        self.positions = (position,)
        self.ref_logp = F.log_softmax(reference_logits[:, position].float(), dim=-1)

    def per_prompt(self, logits: Tensor) -> Tensor:
        logp = F.log_softmax(logits[:, 0].float(), dim=-1)
        ref = self.ref_logp.to(logp.device)
        return (ref.exp() * (ref - logp)).sum(-1)


def normalized(value: Tensor, clean: Tensor | float, corrupted: Tensor | float) -> Tensor:
    """``(value - corrupted) / (clean - corrupted)``: 1 = clean behaviour, 0 = corrupted."""
    return (value - corrupted) / (clean - corrupted)
