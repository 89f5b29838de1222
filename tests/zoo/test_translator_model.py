"""The shipped toy translator ``translator-es-en``, its grammar and the script that trains it.

The metrics are recomputed here with hooks (``generate``, ``run_with_cache``) by
scripts/translator_metrics.py on the held-out file shipped next to the weights, never read from
the model card.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models
from scripts.translation_grammar import ADJECTIVES, NOUNS, Grammar, read_examples
from scripts.translator_metrics import ALIGNMENT_THRESHOLD, EXACT_MATCH_THRESHOLD, alignment, exact_match

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "train_translator.py"
NAME = "translator-es-en"
ZOO_FOLDER = REPO_ROOT / "models" / "zoo" / NAME


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained(NAME, device="cpu")


@pytest.fixture(scope="module")
def heldout():
    return read_examples(ZOO_FOLDER / "heldout.tsv")


# ---------------------------------------------------------------------- the grammar
def test_grammar_alignment_is_consistent():
    rng, grammar = random.Random(7), Grammar()
    es_vocab, en_vocab = set(Grammar.spanish_words()), set(Grammar.english_words())
    for _ in range(2000):
        ex = grammar.sample(rng)
        es, en = ex.source.split(), ex.target.split()
        assert set(es) <= es_vocab and set(en) <= en_vocab
        assert all(0 <= i < len(es) and 0 <= j < len(en) for i, j in ex.links)
        assert set(ex.target_to_source()) == set(range(len(en)))  # every English word is aligned
        for es_adj, es_noun, en_adj, en_noun in ex.swaps:
            assert es_noun < es_adj and en_adj < en_noun  # the order really swaps
            assert (es_adj, en_adj) in ex.links and (es_noun, en_noun) in ex.links
            adj = next(a for a in ADJECTIVES if es[es_adj] in a.forms)
            assert en[en_adj] == adj.en
            assert any(es[es_noun] in (n.es_sg, n.es_pl) and en[en_noun] in (n.en_sg, n.en_pl) for n in NOUNS)


def test_grammar_agreement_examples():
    grammar, rng = Grammar(), random.Random(0)
    seen = {grammar.sample(rng) for _ in range(20000)}
    pairs = {(e.source, e.target) for e in seen}
    # a few fixed facts of the grammar, on sentences it produced
    for ex in seen:
        es, en = ex.source.split(), ex.target.split()
        for k, w in enumerate(en[:-1]):
            if w in ("a", "an"):
                assert w == ("an" if en[k + 1][0] in "aeiou" else "a"), ex
        if "no" in es:
            assert "not" in en and ("does" in en or "do" in en)
    assert len(pairs) > 15000  # combinatorial: held-out sentences are new ones


# ---------------------------------------------------------------------- the training script
def test_training_script_quick_run_loads(tmp_path):
    out = tmp_path / "translator-quick"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-progress", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "heldout.tsv", "metrics.json"):
        assert (out / name).is_file(), name
    m = models.load_pretrained(str(out), device="cpu")
    assert m.cfg.family == "encoder-decoder" and m.cfg.positional_embedding_type == "sinusoidal"
    assert len(read_examples(out / "heldout.tsv")) == 50
    logits = m(m.to_tokens("el gato negro"), "the black cat")
    assert torch.isfinite(logits).all() and logits.shape[-1] == m.cfg.d_vocab


def test_training_is_reproducible():
    from scripts import train_translator

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_state = torch.get_rng_state()
    try:
        runs = []
        for _ in range(2):
            args = train_translator.parse_args(["--quick", "--steps", "6", "--no-progress", "--seed", "3"])
            words = sorted(set(Grammar.spanish_words()) | set(Grammar.english_words()))
            model, history, _, _ = train_translator.train(args, train_translator.build_tokenizer(words), set())
            runs.append((history, model.state_dict()))
    finally:  # train() sets process-wide torch state; give the other tests theirs back
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng_state)
    (hist_a, state_a), (hist_b, state_b) = runs
    assert hist_a == hist_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


# ---------------------------------------------------------------------- the shipped model
def test_listed_and_loads_by_name(model):
    info = {i.name: i for i in models.list_models()}[NAME]
    assert info.family == "encoder-decoder"
    cfg = model.cfg
    assert cfg.family == "encoder-decoder" and cfg.norm_position == "post"
    assert cfg.positional_embedding_type == "sinusoidal" and cfg.act_fn == "relu"
    size = sum(f.stat().st_size for f in ZOO_FOLDER.iterdir() if f.is_file())
    assert size < 8 * 2**20


def test_heldout_never_in_training_stream(heldout):
    """Training skips held-out sources; the file holds distinct sentences with swaps to check."""
    sources = [e.source for e in heldout]
    assert len(sources) == len(set(sources)) >= 500
    assert sum(len(e.swaps) for e in heldout) >= 300


def test_translates_classroom_examples(model):
    from scripts.translator_metrics import translate

    cases = {
        "el gato negro duerme": "the black cat sleeps",
        "¿La niña pequeña ve al perro blanco?": "the small girl sees the white dog",
        "los profesores no beben la leche": "the teachers do not drink the milk",
        "una manzana roja": None,  # not a sentence of the grammar: anything, but no crash
    }
    outputs = translate(model, list(cases))
    for (src, ref), out in zip(cases.items(), outputs):
        if ref is not None:
            assert out == ref, (src, out)


def test_exact_match_on_heldout(model, heldout):
    em, misses = exact_match(model, heldout)
    assert em >= EXACT_MATCH_THRESHOLD, misses[:5]


def test_cross_attention_aligns_swapped_words(model, heldout):
    report = alignment(model, heldout)
    assert report.n_words >= 600
    assert report.last_layer >= ALIGNMENT_THRESHOLD, report


def test_metrics_json_matches_recomputed(model, heldout):
    metrics = json.loads((ZOO_FOLDER / "metrics.json").read_text())
    em, _ = exact_match(model, heldout[:200])
    assert abs(em - metrics["exact_match"]) < 0.05
    assert metrics["heldout_sentences"] == len(heldout)
