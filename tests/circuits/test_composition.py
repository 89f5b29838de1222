"""Composition scores: equal to ``transformer_lens.utilities.composition_scores`` on the same
matrices, with TransformerLens's ``all_composition_scores`` conventions (which matrices, key/value
heads repeated for GQA, zero where the writer is not earlier); the random baseline is reproducible
and near 1/sqrt(d_model); and on the shipped induction model the previous-token head K-composes
with the induction heads far above that baseline, while Q-composition and a scrambled key side
do not."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformer_lens import FactoredMatrix
from transformer_lens.utilities import composition_scores as tl_composition_scores

import circuits.composition as composition
from circuits.composition import (
    all_composition_scores,
    composition_score_matrix,
    composition_score_pairs,
    composition_scores,
    random_composition_baseline,
)
from models import ModelConfig, Transformer, load_pretrained
from tests.conftest import REPO_ROOT

CARD = json.loads((REPO_ROOT / "models/zoo/induction-2l/heads.json").read_text())


def _native(**kw) -> Transformer:
    return Transformer(ModelConfig(**kw)).init_weights(seed=0, std=0.3)


@pytest.fixture(scope="module")
def induction():
    return load_pretrained("induction-2l", device="cpu")


def _random_factored(gen, lead, d, r) -> FactoredMatrix:
    return FactoredMatrix(torch.randn(*lead, d, r, generator=gen), torch.randn(*lead, r, d, generator=gen))


def test_score_matrix_equals_transformer_lens(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    left, right = _random_factored(gen, (2, 3), 12, 5), _random_factored(gen, (4,), 12, 3)
    ours = composition_score_matrix(left, right)
    theirs = tl_composition_scores(left, right, broadcast_dims=True)
    assert ours.shape == (2, 3, 4)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(composition, "PAIR_ELEMENTS", 1)  # one left matrix per chunk: same numbers
    torch.testing.assert_close(composition_score_matrix(left, right), ours)
    matched_left, matched_right = _random_factored(gen, (3,), 12, 5), _random_factored(gen, (3,), 12, 4)
    torch.testing.assert_close(
        composition_score_pairs(matched_left, matched_right),
        tl_composition_scores(matched_left, matched_right, broadcast_dims=False), atol=1e-5, rtol=1e-5,
    )


def _tl_reference(model_or_stack_weights, mode):
    """TransformerLens's all_composition_scores, written out on weights stacked from w_qkv."""
    W_Q, W_K, W_V, W_O = model_or_stack_weights
    left = FactoredMatrix(W_V, W_O)
    right = {"Q": FactoredMatrix(W_Q, W_K.transpose(-2, -1)), "K": FactoredMatrix(W_Q, W_K.transpose(-2, -1)).T,
             "V": FactoredMatrix(W_V, W_O)}[mode]
    scores = tl_composition_scores(left, right, broadcast_dims=True)
    idx = torch.arange(W_Q.shape[0])
    mask = idx[:, None, None, None] < idx[None, None, :, None]
    return torch.where(mask, scores, torch.zeros_like(scores))


def _stack_weights(blocks, attr="attn"):
    """(W_Q, W_K, W_V, W_O) [layers, heads, ...] from the raw storage, key/value heads repeated."""
    out = [[], [], [], []]
    for block in blocks:
        attn = getattr(block, attr)
        H, K = attn.cfg.n_heads, attn.cfg.n_key_value_heads
        kv = [H + h // (H // K) for h in range(H)]
        out[0].append(attn.w_qkv[:, :H].transpose(0, 1))
        out[1].append(attn.w_qkv[:, kv].transpose(0, 1))
        out[2].append(attn.w_qkv[:, [K + i for i in kv]].transpose(0, 1))
        out[3].append(attn.W_O)
    return [torch.stack(x).detach() for x in out]


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_model_scores_equal_transformer_lens_conventions(induction, mode):
    gqa = _native(n_layers=3, d_model=32, n_heads=4, n_key_value_heads=2, d_vocab=20, n_ctx=16,
                  positional_embedding_type="rotary", attn_only=True)
    for model in (induction, gqa):
        ours = composition_scores(model, mode, baseline=False)
        torch.testing.assert_close(ours.scores, _tl_reference(_stack_weights(model.blocks), mode), atol=1e-5, rtol=1e-4)
        L, H = model.cfg.n_layers, model.cfg.n_heads
        assert ours.scores.shape == (L, H, L, H)
        assert ours.writer_labels[H] == "L1H0" and ours.reader_labels[-1] == f"L{L - 1}H{H - 1}"
        expected_valid = (torch.arange(L)[:, None] < torch.arange(L)[None, :])[:, None, :, None].expand(L, H, L, H)
        assert torch.equal(ours.valid, expected_valid)
        assert (ours.scores[ours.valid] > 0).all()
        blank = composition_scores(model, mode, baseline=False, fill=float("nan"))
        assert blank.scores[~blank.valid].isnan().all()
        torch.testing.assert_close(blank.scores[blank.valid], ours.scores[ours.valid])


def test_random_baseline():
    base = random_composition_baseline(64, 16, n_samples=400, seed=3)
    assert base == random_composition_baseline(64, 16, n_samples=400, seed=3)
    assert base != random_composition_baseline(64, 16, n_samples=400, seed=4)
    assert abs(base.mean - 64**-0.5) < 0.1 * 64**-0.5  # E||AB||^2 = ||A||^2 E||B||^2 / d_model
    assert 0 < base.std < base.mean / 5 and base.q95 > base.mean
    assert abs(random_composition_baseline(256, 8, 4, n_samples=200).mean - 256**-0.5) < 0.1 * 256**-0.5
    # a random model's scores look like the baseline, as they should
    model = _native(n_layers=3, d_model=64, n_heads=4, d_vocab=20, n_ctx=16, attn_only=True)
    k = composition_scores(model, "K", baseline_samples=400)
    assert abs(float(k.scores[k.valid].mean()) - k.baseline.mean) < 3 * k.baseline.std
    assert k.baseline.left_rank == 16 and k.baseline.d_model == 64


def test_induction_model_k_composition(induction):
    scores = all_composition_scores(induction)
    k, q = scores["K"], scores["Q"]
    prev = CARD["previous_token_heads"][0]  # the strongest previous-token head
    p_layer, p_head = int(prev[1]), int(prev[3])
    threshold = k.baseline.mean + 5 * k.baseline.std
    tops = []
    for label in CARD["induction_heads"]:
        layer, head = int(label[1]), int(label[3])
        assert k.scores[p_layer, p_head, layer, head] > max(threshold, k.baseline.q95), label
        into = k.scores[:, :, layer, head].flatten()
        tops.append(k.writer_labels[int(into.argmax())])
        # negative control: the same pair does not Q-compose beyond chance
        assert q.scores[p_layer, p_head, layer, head] < q.baseline.q95
    assert prev in tops
    assert k.top(1)[0][0] == prev and k.z_scores()[p_layer, p_head, 1].min() > 5

    # negative control: scramble layer 1's key weights along d_model; the K-composition is gone
    scrambled = copy.deepcopy(induction)
    perm = torch.randperm(induction.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        W_K = scrambled.blocks[1].attn.W_K
        W_K.copy_(W_K[:, perm])
    k_scrambled = composition_scores(scrambled, "K")
    assert (k_scrambled.scores[p_layer, p_head, 1] < k.baseline.mean + 3 * k.baseline.std).all()


def test_encoder_decoder_streams():
    model = _native(
        n_layers=2, d_model=32, n_heads=4, d_vocab=20, n_ctx=16, family="encoder-decoder",
        positional_embedding_type="sinusoidal", n_decoder_layers=3, decoder_overrides={"n_heads": 2},
    )
    enc, dec = _stack_weights(model.encoder.blocks), _stack_weights(model.decoder.blocks)
    cross = _stack_weights(model.decoder.blocks, "cross_attn")
    # K into cross-attention: encoder heads write the encoder output the keys read; every pair valid
    k = composition_scores(model, "K", kind="cross")
    assert (k.writer_kind, k.scores.shape) == ("encoder", (2, 4, 3, 2)) and k.valid.all()
    right = FactoredMatrix(cross[0], cross[1].transpose(-2, -1)).T
    expected = tl_composition_scores(FactoredMatrix(enc[2], enc[3]), right)
    torch.testing.assert_close(k.scores, expected, atol=1e-5, rtol=1e-4)
    assert (k.baseline.left_rank, k.baseline.right_rank) == (8, 16)
    # Q into cross-attention: the decoder's self-attention of the same layer runs before it
    q = composition_scores(model, "Q", kind="cross")
    assert q.writer_kind == "decoder" and q.writer_labels[0] == "DL0H0" and q.reader_labels[0] == "CL0H0"
    assert torch.equal(q.valid[:, 0, :, 0], torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.bool))
    right = FactoredMatrix(cross[0], cross[1].transpose(-2, -1))
    expected = tl_composition_scores(FactoredMatrix(dec[2], dec[3]), right)
    torch.testing.assert_close(q.scores[q.valid], expected[q.valid], atol=1e-5, rtol=1e-4)
    # cross-attention heads also write the decoder stream: into later decoder self-attention
    v = composition_scores(model, "V", kind="decoder", writer_kind="cross")
    assert torch.equal(v.valid[:, 0, :, 0], torch.tensor([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.bool))
    assert composition_scores(model, "V", kind="encoder").scores.shape == (2, 4, 2, 4)
    # one baseline per shape: 8-dim encoder heads write into the cross-attention's keys and values
    every = all_composition_scores(model, kind="cross", baseline_samples=50)
    assert [every[m].baseline.left_rank for m in "QKV"] == [16, 8, 8] and every["K"].baseline is every["V"].baseline
    torch.testing.assert_close(every["K"].scores, k.scores)
    with pytest.raises(ValueError, match="baseline"):
        composition_scores(model, "Q", kind="cross", baseline=every["K"].baseline)
    with pytest.raises(ValueError, match="encoder stream"):
        composition_scores(model, "K", kind="cross", writer_kind="decoder")
    with pytest.raises(ValueError, match="decoder stream"):
        composition_scores(model, "Q", kind="cross", writer_kind="encoder")
