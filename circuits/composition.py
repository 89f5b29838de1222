"""Q-, K- and V-composition scores between attention heads (Elhage et al. 2021, "A Mathematical
Framework for Transformer Circuits", section "Virtual Attention Heads" / composition).

A head A writes ``x W_OV^A`` into the residual stream; a later head B reads it through its
queries (Q-composition), keys (K-composition) or values (V-composition). With row vectors and
right-multiplication (``models.components.attention``), the composition score is

    score(A -> B) = ||W_OV^A M_B||_F / (||W_OV^A||_F ||M_B||_F),
    M_B = W_Q^B (W_K^B)^T (Q),   W_K^B (W_Q^B)^T (K),   W_V^B W_O^B (V),

exactly ``transformer_lens.utilities.composition_scores(OV_A, M_B)`` and the matrices
TransformerLens's ``all_composition_scores`` uses (``OV``, ``QK``, ``QK.T``, ``OV``, with key/value
heads repeated for grouped-query attention). Weights are the checkpoint's own, unprocessed: what
TransformerLens reports for a model loaded without weight processing (``fold_ln=False``,
``center_writing_weights=False``); norms, biases and rotary positions are not part of the score.

The result is ``scores[writer_layer, writer_head, reader_layer, reader_head]``; pairs where the
writer does not come before the reader hold ``fill`` (0 by default, as in TransformerLens; pass
``float("nan")`` to blank them in a plot) and ``valid`` marks the others. "Before": an earlier
layer of the same stack (heads of one layer run in parallel). For an encoder-decoder, the
cross-attention heads read queries from the decoder stream, where the self-attention of the same
layer comes before them, and keys/values from the encoder's output, which every encoder head has
written to (see :func:`composition_scores`).

Norms are computed without forming any d_model x d_model product: for ``A = X Y`` and
``B = Z W`` (X, Z: d_model x r), ``||A B||_F = ||R_X (Y Z) R_W^T||_F`` with ``R_X`` the R factor of
a QR decomposition of X and ``R_W`` that of ``W^T``, an r x r matrix per pair.

Random baseline (:func:`random_composition_baseline`): the score of two independent products
of Gaussian factors with the same shapes, by Monte Carlo with a fixed seed. It concentrates around
``1 / sqrt(d_model)`` (for independent isotropic factors, ``E||A B||^2 = ||A||^2 E||B||^2 / d_model``),
so a score a few baseline standard deviations above its mean is signal, not chance alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from circuits.heads import Kind, attention_modules, head_label, resolve_kind
from circuits.qk_ov import per_query_head

Mode = Literal["Q", "K", "V"]
BASELINE_SAMPLES = 200  # enough for mean, std and 95th percentile to two digits
BASELINE_SEED = 0
PAIR_ELEMENTS = 2**24  # r x r products held at once when scoring every pair
_BASELINE_CHUNK = 50  # random samples drawn at once (part of the seeded sequence: keep fixed)


# ---------------------------------------------------------------------------- pure linear algebra
def _cores(left: FactoredMatrix, right: FactoredMatrix) -> tuple[Tensor, Tensor]:
    """(R_X Y [..., r, d], Z R_W^T [..., d, r']): norm-preserving reductions of the two sides
    (in float32 at least: QR has no 16-bit kernels)."""
    dtype = torch.promote_types(torch.promote_types(left.A.dtype, right.A.dtype), torch.float32)
    left = FactoredMatrix(left.A.to(dtype), left.B.to(dtype))
    right = FactoredMatrix(right.A.to(dtype), right.B.to(dtype))
    r_left = torch.linalg.qr(left.A).R  # ||X M|| = ||R_X M||
    r_right = torch.linalg.qr(right.B.transpose(-2, -1)).R  # ||M W|| = ||M R_W^T||
    return r_left @ left.B, right.A @ r_right.transpose(-2, -1)


def composition_score_matrix(left: FactoredMatrix, right: FactoredMatrix) -> Float[Tensor, "..."]:
    """``||L R||_F / (||L||_F ||R||_F)`` for every pair of a left matrix and a right matrix,
    ``[*left_leading_dims, *right_leading_dims]``: ``transformer_lens.utilities.composition_scores``
    with ``broadcast_dims=True``, in chunks of at most ``PAIR_ELEMENTS`` values."""
    if left.rdim != right.ldim:
        raise ValueError(f"left.rdim ({left.rdim}) must equal right.ldim ({right.ldim})")
    lc, rc = _cores(left, right)
    lead_l, lead_r = lc.shape[:-2], rc.shape[:-2]
    lc, rc = lc.reshape(-1, *lc.shape[-2:]), rc.reshape(-1, *rc.shape[-2:])  # [n_l, r, d], [n_r, d, r']
    l_norm, r_norm = lc.flatten(-2).norm(dim=-1), rc.flatten(-2).norm(dim=-1)
    (n_l, r, d), (n_r, _, r2) = lc.shape, rc.shape
    readers = rc.permute(1, 0, 2).reshape(d, n_r * r2)  # every right core side by side: one GEMM per chunk
    step = max(1, PAIR_ELEMENTS // (r * n_r * r2))
    rows = []
    for i in range(0, n_l, step):
        prod = lc[i : i + step].reshape(-1, d) @ readers  # [step * r, n_r * r']
        rows.append(prod.view(-1, r, n_r, r2).pow(2).sum((1, 3)).sqrt())
    scores = torch.cat(rows) / l_norm[:, None] / r_norm[None, :]
    return scores.reshape(*lead_l, *lead_r)


def composition_score_pairs(left: FactoredMatrix, right: FactoredMatrix) -> Float[Tensor, "*leading"]:
    """Scores of matched pairs (``left[i]`` with ``right[i]``), leading dims broadcast."""
    lc, rc = _cores(left, right)
    return (lc @ rc).flatten(-2).norm(dim=-1) / lc.flatten(-2).norm(dim=-1) / rc.flatten(-2).norm(dim=-1)


@dataclass(frozen=True)
class CompositionBaseline:
    """Distribution of the composition score of random matrices of the given shapes."""

    mean: float
    std: float
    q95: float  # 95th percentile
    d_model: int
    left_rank: int
    right_rank: int
    n_samples: int
    seed: int


@torch.no_grad()
def random_composition_baseline(
    d_model: int,
    left_rank: int,
    right_rank: Optional[int] = None,
    *,
    n_samples: int = BASELINE_SAMPLES,
    seed: int = BASELINE_SEED,
) -> CompositionBaseline:
    """Monte Carlo composition score of ``(X Y)`` and ``(Z W)`` with independent standard Gaussian
    factors: X [d_model, left_rank], Y [left_rank, d_model], Z [d_model, right_rank],
    W [right_rank, d_model] (a head's OV, and a head's QK or OV). Seeded: the same arguments give
    the same numbers. The score is scale-free, so the factors' scale does not matter."""
    right_rank = left_rank if right_rank is None else right_rank
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for start in range(0, n_samples, _BASELINE_CHUNK):  # bounded memory for a large d_model
        n = min(_BASELINE_CHUNK, n_samples - start)
        X, Y, Z, W = (
            torch.randn(n, *shape, generator=gen, dtype=torch.float64)
            for shape in ((d_model, left_rank), (left_rank, d_model), (d_model, right_rank), (right_rank, d_model))
        )
        samples.append(composition_score_pairs(FactoredMatrix(X, Y), FactoredMatrix(Z, W)))
    s = torch.cat(samples)
    return CompositionBaseline(
        float(s.mean()), float(s.std()), float(s.quantile(0.95)), d_model, left_rank, right_rank, n_samples, seed
    )


# ---------------------------------------------------------------------------- heads of a model
# Each attention reads and writes residual streams at a "time" within the stream; a writer comes
# before a reader when its time is smaller. Decoder stream: self-attention of layer l at 2l, cross-
# attention at 2l + 1 (the block runs them in that order); encoder stream: layer l at l, and the
# cross-attention's keys and values read the encoder's output, after every encoder layer.
_WRITES = {"self": "self", "encoder": "encoder", "decoder": "decoder", "cross": "decoder"}


def _reads(kind: str, mode: str) -> str:
    if kind == "cross":
        return "decoder" if mode == "Q" else "encoder"
    return _WRITES[kind]


def _time(kind: str, layer: int, reading_mode: Optional[str] = None) -> float:
    if kind == "cross":
        return float("inf") if reading_mode in ("K", "V") else 2 * layer + 1
    return 2 * layer if kind == "decoder" else layer


@dataclass
class CompositionScores:
    """``scores[writer_layer, writer_head, reader_layer, reader_head]`` for one mode."""

    scores: Float[Tensor, "writer_layer writer_head reader_layer reader_head"]
    valid: Bool[Tensor, "writer_layer writer_head reader_layer reader_head"]  # the writer comes before the reader
    mode: str  # "Q", "K" or "V"
    writer_kind: str
    reader_kind: str
    writer_labels: list[str]  # layer-major: the rows of scores.flatten(0, 1)
    reader_labels: list[str]  # the columns of scores.flatten(2, 3)
    shapes: tuple[int, int, int]  # (d_model, writer d_head, reader d_head): what the baseline depends on
    baseline: Optional[CompositionBaseline] = None

    def flat(self) -> Tensor:
        """[writer heads, reader heads]."""
        return self.scores.flatten(0, 1).flatten(1, 2)

    def z_scores(self) -> Tensor:
        """(score - baseline mean) / baseline std, NaN where not valid."""
        if self.baseline is None:
            raise ValueError("no baseline was computed")
        z = (self.scores - self.baseline.mean) / self.baseline.std
        return torch.where(self.valid, z, torch.full_like(z, float("nan")))

    def top(self, k: int = 10) -> list[tuple[str, str, float]]:
        """The ``k`` largest valid (writer, reader, score) triples."""
        masked = torch.where(self.valid, self.scores, torch.full_like(self.scores, float("-inf")))
        flat = masked.flatten(0, 1).flatten(1, 2)
        values, index = flat.flatten().topk(min(k, int(self.valid.sum())))
        n_r = flat.shape[1]
        return [
            (self.writer_labels[i // n_r], self.reader_labels[i % n_r], float(v))
            for v, i in zip(values.tolist(), index.tolist())
        ]


def _stacked(model, kind: str) -> dict[str, Tensor]:
    """Per-query-head weights of every layer: W_Q, W_K, W_V [L, H, d_model, d_head], W_O [L, H, d_head, d_model]."""
    modules = attention_modules(model, kind)
    return {
        "W_Q": torch.stack([m.W_Q for m in modules]),
        "W_K": torch.stack([per_query_head(m.W_K, m.cfg) for m in modules]),
        "W_V": torch.stack([per_query_head(m.W_V, m.cfg) for m in modules]),
        "W_O": torch.stack([m.W_O for m in modules]),
    }


def reader_matrix(weights: dict[str, Tensor], mode: str) -> FactoredMatrix:
    """The matrix a reader head applies to what it reads, for ``mode``: ``W_Q W_K^T`` (Q), its
    transpose ``W_K W_Q^T`` (K) or ``W_V W_O`` (V), as TransformerLens's all_composition_scores."""
    if mode == "Q":
        return FactoredMatrix(weights["W_Q"], weights["W_K"].transpose(-2, -1))
    if mode == "K":
        return FactoredMatrix(weights["W_Q"], weights["W_K"].transpose(-2, -1)).T
    if mode == "V":
        return FactoredMatrix(weights["W_V"], weights["W_O"])
    raise ValueError(f"mode must be 'Q', 'K' or 'V', not {mode!r}")


@torch.no_grad()
def composition_scores(
    model,
    mode: Mode,
    *,
    kind: Optional[Kind] = None,
    writer_kind: Optional[Kind] = None,
    baseline: Union[bool, CompositionBaseline] = True,
    baseline_samples: int = BASELINE_SAMPLES,
    seed: int = BASELINE_SEED,
    fill: float = 0.0,
) -> CompositionScores:
    """Composition scores from every head of ``writer_kind`` into every head of ``kind`` (the
    readers) for ``mode`` (module docstring), with the random baseline for the same shapes.

    ``kind`` defaults as in :func:`circuits.heads.resolve_kind`; ``writer_kind`` defaults to the
    attention that writes the stream the readers read: the same kind, except for cross-attention
    readers: the decoder's self-attention for Q, the encoder's for K and V (``"cross"`` is also a
    valid writer for Q-composition into later cross-attention or decoder heads).

    ``baseline``: True computes :func:`random_composition_baseline` for these shapes
    (``baseline_samples``, ``seed``), a :class:`CompositionBaseline` is used as given, False skips it."""
    reader_kind = resolve_kind(model, kind)
    stream = _reads(reader_kind, mode)
    if writer_kind is None:
        writer_kind = stream
    writer_kind = resolve_kind(model, writer_kind)
    if _WRITES[writer_kind] != stream:
        raise ValueError(
            f"{mode}-composition into {reader_kind} heads reads the {stream} stream, "
            f"which {writer_kind} heads do not write to"
        )
    reader_w = _stacked(model, reader_kind)
    writer_w = reader_w if writer_kind == reader_kind else _stacked(model, writer_kind)
    left = FactoredMatrix(writer_w["W_V"], writer_w["W_O"])
    right = reader_matrix(reader_w, mode)
    scores = composition_score_matrix(left, right)  # [Lw, Hw, Lr, Hr]

    Lw, Hw, Lr, Hr = scores.shape
    t_w = torch.tensor([_time(writer_kind, l) for l in range(Lw)], dtype=torch.float64)
    t_r = torch.tensor([_time(reader_kind, l, mode) for l in range(Lr)], dtype=torch.float64)
    valid = (t_w[:, None] < t_r[None, :])[:, None, :, None].expand(Lw, Hw, Lr, Hr).to(scores.device)
    scores = torch.where(valid, scores, torch.full_like(scores, fill))

    shapes = (left.ldim, left.mdim, right.mdim)
    base = baseline if isinstance(baseline, CompositionBaseline) else None
    if base is not None and (base.d_model, base.left_rank, base.right_rank) != shapes:
        raise ValueError(f"the baseline given is for shapes {base}, these heads have {shapes}")
    if baseline is True:
        base = random_composition_baseline(*shapes, n_samples=baseline_samples, seed=seed)
    return CompositionScores(
        scores.float().cpu(), valid.cpu(), mode, writer_kind, reader_kind,
        [head_label(l, h, writer_kind) for l in range(Lw) for h in range(Hw)],
        [head_label(l, h, reader_kind) for l in range(Lr) for h in range(Hr)],
        shapes,
        base,
    )


def all_composition_scores(
    model,
    *,
    kind: Optional[Kind] = None,
    baseline: bool = True,
    baseline_samples: int = BASELINE_SAMPLES,
    seed: int = BASELINE_SEED,
    **kwargs,
) -> dict[str, CompositionScores]:
    """Q, K and V composition scores (one :class:`CompositionScores` each) for the readers of
    ``kind``; one baseline is drawn per distinct shape (usually one for the three modes)."""
    out = {mode: composition_scores(model, mode, kind=kind, baseline=False, **kwargs) for mode in ("Q", "K", "V")}
    if baseline:
        drawn: dict[tuple[int, int, int], CompositionBaseline] = {}
        for result in out.values():
            if result.shapes not in drawn:
                drawn[result.shapes] = random_composition_baseline(
                    *result.shapes, n_samples=baseline_samples, seed=seed
                )
            result.baseline = drawn[result.shapes]
    return out
