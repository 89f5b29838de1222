"""Head detectors: masks equal TransformerLens's detection patterns, scores equal its
``detect_head`` (its normalization) and the induction metrics script (ours), hand-made patterns give
the hand-computed scores, and on the shipped induction model the detectors name the heads of its
model card while a random model of the same shape has none."""

from __future__ import annotations

import json

import pytest
import torch
from transformer_lens import head_detector as tl_hd

import scripts.induction_metrics as induction_metrics
from circuits.heads import (
    attention_hook_name,
    detection_masks,
    head_detector_scores,
    head_labels,
    pattern_scores,
    repeated_random_tokens,
    repeated_tokens_scores,
    special_token_ids,
)
from models import ModelConfig, Transformer, load_pretrained
from tests.conftest import REPO_ROOT

CARD = json.loads((REPO_ROOT / "models/zoo/induction-2l/heads.json").read_text())


@pytest.fixture(scope="module")
def induction():
    return load_pretrained("induction-2l", device="cpu")


@pytest.fixture(scope="module")
def seq2seq():
    cfg = ModelConfig(
        n_layers=2, d_model=32, n_heads=4, d_vocab=40, n_ctx=20, family="encoder-decoder",
        positional_embedding_type="sinusoidal", norm_position="post", n_decoder_layers=3,
        decoder_overrides={"n_heads": 2}, decoder_start_token_id=2, pad_token_id=0,
    )
    return Transformer(cfg).init_weights(seed=1, std=0.3)


def test_masks_equal_transformer_lens_detection_patterns():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 4, (1, 16), generator=gen)  # small vocabulary: many repeats, also adjacent
    assert (tokens[0, 1:] == tokens[0, :-1]).any()  # covers the "key q in the induction mask" case
    masks = detection_masks(tokens)
    for ours, theirs in [
        ("previous_token", tl_hd.get_previous_token_head_detection_pattern),
        ("duplicate_token", tl_hd.get_duplicate_token_head_detection_pattern),
        ("induction", tl_hd.get_induction_head_detection_pattern),
    ]:
        assert torch.equal(masks[ours][0], theirs(tokens).bool()), ours


def test_masks_by_hand():
    tokens = torch.tensor([[9, 5, 6, 5, 6, 6]])
    m = {name: mask[0].nonzero().tolist() for name, mask in detection_masks(tokens).items()}
    assert m["previous_token"] == [[q, q - 1] for q in range(1, 6)]
    assert m["duplicate_token"] == [[3, 1], [4, 2], [5, 2], [5, 4]]
    # token after each earlier occurrence: 5@1 -> 2; 6@2 -> 3; 6@2, 6@4 -> 3, 5 (5 is the query itself)
    assert m["induction"] == [[3, 2], [4, 3], [5, 3], [5, 5]]
    assert m["first_token"] == [[q, 0] for q in range(1, 6)]
    # left padding: padding is neither query nor key, "first" is the first real token
    padded = detection_masks(torch.tensor([[0, 0, 9, 5, 5]]), torch.tensor([[0, 0, 1, 1, 1]]))
    assert padded["previous_token"][0].nonzero().tolist() == [[3, 2], [4, 3]]
    assert padded["first_token"][0].nonzero().tolist() == [[3, 2], [4, 2]]
    assert padded["duplicate_token"][0].nonzero().tolist() == [[4, 3]]


def test_pattern_scores_by_hand():
    # [BOS] a b c a b c: head 0 attends to the previous token, head 1 is a perfect induction head
    # on the second copy (self elsewhere), head 2 attends uniformly to the past
    tokens = torch.tensor([[0, 1, 2, 3, 1, 2, 3]])
    T = tokens.shape[1]
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    ind = torch.eye(T)
    ind[4:, 4:] = 0
    ind[[4, 5, 6], [2, 3, 4]] = 1
    uniform = torch.tril(torch.ones(T, T))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    pattern = torch.stack([prev, ind, uniform])[None]  # [1, 3, T, T]
    masks = detection_masks(tokens)
    uniform_past = sum(1 / (q + 1) for q in range(1, T)) / 6  # mean of 1/(q+1) over queries 1..6
    torch.testing.assert_close(pattern_scores(pattern, masks["previous_token"]), torch.tensor([1.0, 0.0, uniform_past]))
    uniform_second_copy = (1 / 5 + 1 / 6 + 1 / 7) / 3  # queries 4, 5, 6
    expected = torch.tensor([0.0, 1.0, uniform_second_copy])
    torch.testing.assert_close(pattern_scores(pattern, masks["induction"]), expected)
    # the previous-token head attends to the first token from query 1 only: 1 of 6 queries
    torch.testing.assert_close(pattern_scores(pattern, masks["first_token"]), torch.tensor([1 / 6, 0.0, uniform_past]))
    # TransformerLens's normalization averages over every query row (7), so the perfect head scores 3/7
    all_rows = pattern_scores(pattern, masks["induction"], normalization="all_queries")
    torch.testing.assert_close(all_rows[1], torch.tensor(3 / 7))


def test_scores_equal_transformer_lens_detect_head(induction):
    prompt = "gato azul tren queso river lapiz gato azul tren queso river lapiz el gato"
    tokens = induction.to_tokens(prompt)
    ours = head_detector_scores(induction, tokens, normalization="all_queries")
    for name, tl_name in [("previous_token", "previous_token_head"), ("duplicate_token", "duplicate_token_head"),
                          ("induction", "induction_head")]:
        theirs = tl_hd.detect_head(induction, prompt, tl_name)
        torch.testing.assert_close(ours[name], theirs.float(), atol=1e-5, rtol=0)
    # the default (queries with a target only) is a different number for the same pattern
    default = head_detector_scores(induction, tokens)
    assert (default["induction"] - ours["induction"]).abs().max() > 0.1


def test_probe_scores_equal_induction_metrics(induction):
    L, n = 7, 12
    report = induction_metrics.measure(induction, lengths=[L], n_per_length=n)
    words = induction_metrics.word_ids(induction.tokenizer, induction.cfg.d_vocab)
    tokens = induction_metrics.repeated_sequences(induction.tokenizer.bos_token_id, words, L, n)
    ours = head_detector_scores(induction, tokens)
    torch.testing.assert_close(ours["induction"], report.induction_score, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours["previous_token"], report.prev_token_score, atol=1e-5, rtol=0)
    assert ours.n_queries["induction"] == n * L


def test_first_token_and_duplicate_scores_from_the_cache(induction):
    tokens = repeated_random_tokens(induction, 9, 8, seed=3)
    ours = head_detector_scores(induction, tokens)
    _, cache = induction.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    L = 9
    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        torch.testing.assert_close(ours["first_token"][layer], pattern[:, :, 1:, 0].mean((0, 2)), atol=1e-5, rtol=0)
        q = torch.arange(L + 1, 2 * L + 1)  # second copy; its earlier occurrence is q - L
        expected = pattern[:, :, q, q - L].mean((0, 2))
        torch.testing.assert_close(ours["duplicate_token"][layer], expected, atol=1e-5, rtol=0)


def test_detectors_find_the_model_card_heads(induction):
    scores = repeated_tokens_scores(induction, length=12, n=32)
    threshold = CARD["thresholds"]
    induction_heads = scores.heads("induction", threshold["induction_score"], layers=[1])
    prev_heads = scores.heads("previous_token", threshold["previous_token_score"], layers=[0])
    assert set(induction_heads) == set(CARD["induction_heads"])
    assert set(prev_heads) == set(CARD["previous_token_heads"])
    assert induction_heads[0] == CARD["induction_heads"][0]
    assert scores.top("previous_token", 1)[0][0] == CARD["previous_token_heads"][0]
    # negative control: the same architecture with random weights has no such heads
    random_model = Transformer(induction.cfg).init_weights(seed=0)
    random_model.tokenizer = induction.tokenizer
    control = repeated_tokens_scores(random_model, length=12, n=32)
    assert control.heads("induction", 0.7) == [] and control.heads("previous_token", 0.7) == []
    assert float(control["induction"].max()) < 0.3


def test_padded_batch_equals_separate_prompts(induction):
    a = repeated_random_tokens(induction, 5, 1, seed=1)[0]  # 11 tokens
    b = repeated_random_tokens(induction, 8, 1, seed=2)[0]  # 17 tokens
    singles = [head_detector_scores(induction, t[None]) for t in (a, b)]
    pad = induction.tokenizer.pad_token_id
    for side in ("left", "right"):
        fill = [torch.full((17 - len(t),), pad) for t in (a, b)]
        rows = [torch.cat([f, t] if side == "left" else [t, f]) for f, t in zip(fill, (a, b))]
        mask = torch.stack([torch.cat([torch.zeros_like(f), torch.ones_like(t)] if side == "left"
                                      else [torch.ones_like(t), torch.zeros_like(f)]) for f, t in zip(fill, (a, b))])
        batch = head_detector_scores(induction, torch.stack(rows), attention_mask=mask)
        for name in batch.scores:
            counts = [s.n_queries[name] for s in singles]
            pooled = sum(s[name] * c for s, c in zip(singles, counts)) / sum(counts)
            assert batch.n_queries[name] == sum(counts)
            torch.testing.assert_close(batch[name], pooled, atol=1e-5, rtol=0)


def test_repeated_random_tokens(induction):
    t = repeated_random_tokens(induction, 10, 6, seed=5)
    assert t.shape == (6, 21)
    assert (t[:, 0] == induction.tokenizer.bos_token_id).all()
    assert torch.equal(t[:, 1:11], t[:, 11:])
    assert all(len(set(row[1:11].tolist())) == 10 for row in t)
    assert not set(t[:, 1:].flatten().tolist()) & special_token_ids(induction)
    assert torch.equal(t, repeated_random_tokens(induction, 10, 6, seed=5))
    assert not torch.equal(t, repeated_random_tokens(induction, 10, 6, seed=6))
    assert repeated_random_tokens(induction, 4, 2, bos_id=None).shape == (2, 8)


def test_encoder_decoder_kinds_read_their_own_patterns(seq2seq):
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(3, 9, (2, 7), generator=gen)  # few distinct ids: repeats
    tgt = torch.randint(3, 9, (2, 6), generator=gen)
    _, cache = seq2seq.run_with_cache(src, tgt)
    for kind, tokens, n_layers, n_heads in [("encoder", src, 2, 4), ("decoder", tgt, 3, 2)]:
        ours = head_detector_scores(seq2seq, tokens, kind=kind, src_tokens=src)
        masks = detection_masks(tokens)
        for layer in range(n_layers):
            pattern = cache[attention_hook_name(kind, layer, "hook_pattern")]
            for name in ("previous_token", "induction", "first_token"):
                torch.testing.assert_close(ours[name][layer], pattern_scores(pattern, masks[name]))
        assert ours["induction"].shape == (n_layers, n_heads)
    cross = head_detector_scores(seq2seq, tgt, kind="cross", src_tokens=src)
    for layer in range(3):
        pattern = cache[attention_hook_name("cross", layer, "hook_pattern")]
        torch.testing.assert_close(cross["first_token"][layer], pattern[..., 0].mean((0, 2)))
    assert head_labels(seq2seq, "cross")[:3] == ["CL0H0", "CL0H1", "CL1H0"]
    assert head_labels(seq2seq, "encoder")[-1] == "EL1H3"
    with pytest.raises(ValueError, match="cross-attention"):
        head_detector_scores(seq2seq, tgt, kind="cross", src_tokens=src, detectors=["previous_token"])
    with pytest.raises(ValueError, match="three attentions"):
        head_detector_scores(seq2seq, src, kind="self")
