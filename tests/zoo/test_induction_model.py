"""The shipped demo model ``induction-2l`` and the script that trains it.

The metrics are recomputed here from hooks (``run_with_cache``) by scripts/induction_metrics.py,
never read from the model card.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models
from scripts.induction_metrics import (
    INDUCTION_THRESHOLD,
    PREV_TOKEN_THRESHOLD,
    SECOND_COPY_MAX_LOSS,
    head_name,
    induction_score_without_in_keys,
    max_repeat_length,
    measure,
    parse_head,
    repeated_sequences,
    word_ids,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "train_induction.py"
ZOO_FOLDER = REPO_ROOT / "models" / "zoo" / "induction-2l"


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained("induction-2l", device="cpu")


@pytest.fixture(scope="module")
def report(model):
    # The default probe (every |R| from 3 to (n_ctx-1)//2, fixed seed): the same one the
    # training script used to name the heads in heads.json.
    return measure(model)


@pytest.fixture(scope="module")
def heads_json() -> dict:
    return json.loads((ZOO_FOLDER / "heads.json").read_text())


# ---------------------------------------------------------------------- the training script
def test_training_script_quick_run_loads(tmp_path):
    out = tmp_path / "induction-quick"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-progress", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "heads.json"):
        assert (out / name).is_file(), name
    m = models.load_pretrained(str(out), device="cpu")
    assert m.cfg.n_layers == 2 and m.cfg.attn_only and m.cfg.positional_embedding_type == "standard"
    assert m.tokenizer is not None and len(m.tokenizer) == m.cfg.d_vocab
    tokens = m.to_tokens("el gato come pan")
    assert tokens[0, 0].item() == m.tokenizer.bos_token_id and tokens.shape == (1, 5)
    assert torch.isfinite(m(tokens)).all()
    heads = json.loads((out / "heads.json").read_text())
    assert {"induction_heads", "previous_token_heads"} <= set(heads)


def test_training_is_bitwise_reproducible():
    """Two short runs with the same seed give bitwise equal losses and weights (the full run is
    too slow for a test; two full runs of the shipped command gave identical model.safetensors)."""
    from scripts import train_induction

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_state = torch.get_rng_state()
    try:
        runs = []
        for _ in range(2):
            args = train_induction.parse_args(["--quick", "--steps", "15", "--no-progress", "--seed", "3"])
            model, losses, _ = train_induction.train(args)
            runs.append((losses, model.state_dict()))
    finally:  # train() sets process-wide torch state; give the other tests theirs back
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng_state)
    (losses_a, state_a), (losses_b, state_b) = runs
    assert losses_a == losses_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


# ---------------------------------------------------------------------- the shipped model
def test_listed_and_loads_by_name(model):
    assert "induction-2l" in [info.name for info in models.list_models()]
    cfg = model.cfg
    assert cfg.n_layers == 2 and cfg.attn_only and cfg.family == "decoder"
    assert cfg.positional_embedding_type == "standard" and cfg.normalization_type == "LN"
    assert model.tokenizer is not None and len(model.tokenizer) == cfg.d_vocab
    assert sum(f.stat().st_size for f in ZOO_FOLDER.iterdir() if f.is_file()) < 8 * 2**20


def test_tokenizer_is_readable(model):
    tok = model.tokenizer
    assert model.to_str_tokens("El gato come pan") == ["<bos>", "el", "gato", "come", "pan"]
    assert model.to_str_tokens("niño") == ["<bos>", "nino"]  # accents stripped, lowercased
    assert tok.convert_ids_to_tokens(tok.unk_token_id) == "<unk>" and tok.pad_token == "<pad>"
    assert len(word_ids(tok, model.cfg.d_vocab)) >= 300


@torch.no_grad()
def test_copies_a_typed_prompt(model):
    words = "gato azul tren queso river lapiz casa".split()
    tokens = model.to_tokens(" ".join(words + words))
    pred = model(tokens)[0].argmax(-1)
    n = len(words)
    # from the second word of the second copy on, the model predicts the continuation
    assert tokens[0, n + 2 :].tolist() == pred[n + 1 : -1].tolist()


# Lengths the test picks: odd, prime and even lengths, short and long, including the longest
# repeat that fits ([BOS] + R + R in n_ctx tokens).
def _test_lengths(n_ctx: int) -> list[int]:
    top = max_repeat_length(n_ctx)
    return sorted({3, 4, 5, 7, 9, 11, 13, 17, 19, 23, top - 2, top - 1, top})


def test_second_copy_loss_is_low_at_every_length(model):
    report = measure(model, lengths=_test_lengths(model.cfg.n_ctx), n_per_length=48, seed=2024)
    bad = {L: round(v, 3) for L, v in report.second_copy_loss.items() if not v < SECOND_COPY_MAX_LOSS}
    assert not bad, f"second-copy loss >= {SECOND_COPY_MAX_LOSS} nats at {bad}"
    chance = math.log(report.n_words)
    low = {L: round(v, 3) for L, v in report.first_copy_loss.items() if not v > 0.5 * chance}
    assert not low, f"first-copy loss <= 0.5*log(words) = {0.5 * chance:.2f} at {low}"


def test_induction_and_previous_token_heads(report):
    assert float(report.induction_score[1].max()) >= INDUCTION_THRESHOLD, report.induction_score
    assert float(report.prev_token_score[0].max()) >= PREV_TOKEN_THRESHOLD, report.prev_token_score


def test_heads_json_names_those_heads(report, heads_json):
    assert report.induction_heads(), "no induction head"
    assert report.previous_token_heads(), "no previous-token head"
    assert set(heads_json["induction_heads"]) == set(report.induction_heads())
    assert set(heads_json["previous_token_heads"]) == set(report.previous_token_heads())
    for name in heads_json["induction_heads"]:
        assert name.startswith("L1H")
    for name in heads_json["previous_token_heads"]:
        assert name.startswith("L0H")


def test_card_names_the_heads(heads_json):
    card = (ZOO_FOLDER / "README.md").read_text()
    for name in heads_json["induction_heads"] + heads_json["previous_token_heads"]:
        assert name in card
    assert "python scripts/train_induction.py" in card and "Seed" in card


@torch.no_grad()
def test_induction_is_not_positional(model):
    """The same copy also works when the repeat starts at a random offset after random words
    (a model that learned "copy from position q/2" or "copy from L back" for one L would fail)."""
    words = word_ids(model.tokenizer, model.cfg.d_vocab)
    gen = torch.Generator().manual_seed(7)
    bos = model.tokenizer.bos_token_id
    losses = []
    for L, prefix, gap in [(4, 9, 3), (6, 2, 15), (10, 17, 5), (13, 5, 20)]:
        seqs = repeated_sequences(bos, words, L, 32, seed=100 + L)[:, 1 : L + 1]
        noise = torch.as_tensor(words)[torch.randint(len(words), (32, prefix + gap), generator=gen)]
        tokens = torch.cat([seqs.new_full((32, 1), bos), noise[:, :prefix], seqs, noise[:, prefix:], seqs], dim=1)
        logits, _ = model.run_with_cache(tokens, names_filter=lambda name: False)
        nll = -torch.log_softmax(logits, -1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        start = 1 + prefix + L + gap  # position of the second copy's first token
        losses.append(float(nll[:, start : start + L - 1].mean()))  # targets start+1 .. start+L-1
    assert max(losses) < SECOND_COPY_MAX_LOSS, losses


def test_k_composition(model, heads_json):
    """Layer 1 finds "the token after the earlier A" through keys written by the previous-token
    heads: recomputing only layer 1's keys without those heads' outputs breaks the induction
    pattern, and without the other layer-0 heads it does not."""
    prev = heads_json["previous_token_heads"]
    lengths = [3, 6, 11, 20, max_repeat_length(model.cfg.n_ctx)]
    without_prev = induction_score_without_in_keys(model, prev, lengths, n_per_length=16)
    assert float(without_prev.max()) < 0.3, without_prev
    others = [head_name(0, h) for h in range(model.cfg.n_heads) if head_name(0, h) not in prev]
    if others:
        without_others = induction_score_without_in_keys(model, others, lengths, n_per_length=16)
        for name in heads_json["induction_heads"]:
            assert float(without_others[parse_head(name)[1]]) >= INDUCTION_THRESHOLD, (name, without_others)
