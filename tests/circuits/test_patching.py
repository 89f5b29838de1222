"""Exact activation patching: equal to TransformerLens's patching functions on the same model,
and the identities that pin it (clean into clean changes nothing; every position of resid_pre
at layer 0 restores the clean run)."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching as tl_patching

from circuits.metrics import KLDivergence, LogitDiff, LogProb, normalized
from circuits.patching import (
    Cancelled,
    PatchingInputError,
    patch_head_outputs,
    patch_head_vectors,
    patch_layer_outputs,
    patch_residual,
)
from models import load_pretrained
from tests.hf_reference import random_tokens, save_random_hf_model


@pytest.fixture(scope="module", params=["gpt2", "llama_gqa", "neox"])
def setup(request, tmp_path_factory):
    kind = request.param
    model = load_pretrained(save_random_hf_model(kind, tmp_path_factory.mktemp(kind)), device="cpu")
    clean = random_tokens(model.cfg.d_vocab, 8, batch=2, seed=3)
    corrupted = clean.clone()
    corrupted[:, 2] = (corrupted[:, 2] + 11) % model.cfg.d_vocab
    corrupted[:, 5] = (corrupted[:, 5] + 29) % model.cfg.d_vocab
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        _, corrupted_cache = model.run_with_cache(corrupted)
    metric = LogitDiff(answer=[5, 7], wrong=[9, 3])
    return kind, model, clean, corrupted, clean_cache, corrupted_cache, metric


def close(a, b, atol=1e-4):
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


SWEEPS = [
    ("resid_pre", lambda m, t, c, f: patch_residual(m, t, c, f, "pre"), tl_patching.get_act_patch_resid_pre),
    ("resid_mid", lambda m, t, c, f: patch_residual(m, t, c, f, "mid"), tl_patching.get_act_patch_resid_mid),
    ("attn_out", lambda m, t, c, f: patch_layer_outputs(m, t, c, f, "attn"), tl_patching.get_act_patch_attn_out),
    ("mlp_out", lambda m, t, c, f: patch_layer_outputs(m, t, c, f, "mlp"), tl_patching.get_act_patch_mlp_out),
    ("head_out", lambda m, t, c, f: patch_head_outputs(m, t, c, f), tl_patching.get_act_patch_attn_head_out_all_pos),
    ("head_out_by_pos", lambda m, t, c, f: patch_head_outputs(m, t, c, f, by_position=True),
     tl_patching.get_act_patch_attn_head_out_by_pos),
    ("q", lambda m, t, c, f: patch_head_vectors(m, t, c, f, "q"), tl_patching.get_act_patch_attn_head_q_all_pos),
    ("k", lambda m, t, c, f: patch_head_vectors(m, t, c, f, "k"), tl_patching.get_act_patch_attn_head_k_all_pos),
    ("v", lambda m, t, c, f: patch_head_vectors(m, t, c, f, "v"), tl_patching.get_act_patch_attn_head_v_all_pos),
    ("pattern", lambda m, t, c, f: patch_head_vectors(m, t, c, f, "pattern"),
     tl_patching.get_act_patch_attn_head_pattern_all_pos),
]


@pytest.mark.parametrize("name,ours,theirs", SWEEPS, ids=[s[0] for s in SWEEPS])
def test_equals_transformer_lens(setup, name, ours, theirs):
    kind, model, clean, corrupted, clean_cache, _, metric = setup
    if kind == "neox" and name == "resid_mid":
        pytest.skip("parallel attention + MLP blocks have no resid_mid")
    if kind == "llama_gqa" and name in ("k", "v"):
        pytest.skip("TransformerLens indexes k/v by query head; with GQA ours sweep the key/value heads")
    result = ours(model, corrupted, clean_cache, metric)
    expected = theirs(model, corrupted, clean_cache, metric)
    close(result.values, expected)
    assert result.values.abs().max() > 1e-3  # the patches matter: equality is not vacuous
    assert len(result.axes) == result.values.ndim


def test_gqa_key_value_heads(setup):
    kind, model, clean, corrupted, clean_cache, _, metric = setup
    if kind != "llama_gqa":
        pytest.skip("grouped-query model only")
    result = patch_head_vectors(model, corrupted, clean_cache, metric, "k")
    assert result.values.shape == (model.cfg.n_layers, model.cfg.n_key_value_heads)
    # reference: one full forward per patch of a key/value head
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_key_value_heads):
            def fn(k, hook, h=h, l=l):
                k = k.clone()
                k[:, :, h] = clean_cache[f"blocks.{l}.attn.hook_k"][:, :, h]
                return k
            with torch.no_grad():
                logits = model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{l}.attn.hook_k", fn)])
            close(result.values[l, h], metric(logits))


def test_clean_into_clean_changes_nothing(setup):
    _, model, clean, _, clean_cache, _, metric = setup
    with torch.no_grad():
        base = float(metric(model(clean)))
    for result in (patch_residual(model, clean, clean_cache, metric), patch_head_outputs(model, clean, clean_cache, metric),
                   patch_layer_outputs(model, clean, clean_cache, metric, "mlp")):
        close(result.values, torch.full_like(result.values, base), atol=1e-5)


def test_all_positions_of_resid_pre_0_restores_clean(setup):
    _, model, clean, corrupted, clean_cache, _, metric = setup
    from circuits.patching import Patch, _run_patches

    everything = [Patch(0, "blocks.0.hook_resid_pre", (slice(None), slice(None)))]
    value = _run_patches(model, corrupted, clean_cache, metric, everything)
    with torch.no_grad():
        close(value[0], metric(model(clean)), atol=1e-5)
        assert abs(float(metric(model(clean))) - float(metric(model(corrupted)))) > 1e-3


def test_normalized_and_denoising_vs_noising(setup):
    _, model, clean, corrupted, clean_cache, corrupted_cache, metric = setup
    denoise = patch_residual(model, corrupted, clean_cache, metric, source_tokens=clean)
    with torch.no_grad():
        clean_v, corrupted_v = float(metric(model(clean))), float(metric(model(corrupted)))
    assert denoise.baseline == pytest.approx(corrupted_v, abs=1e-5) and denoise.source == pytest.approx(clean_v, abs=1e-5)
    norm = denoise.normalized()
    close(normalized(torch.tensor(clean_v), clean_v, corrupted_v), torch.tensor(1.0))
    assert torch.isfinite(norm).all()
    noise = patch_residual(model, clean, corrupted_cache, metric, source_tokens=corrupted)
    assert noise.baseline == pytest.approx(clean_v, abs=1e-5)
    # positions that are the same in both runs: patching them at layer 0 changes nothing
    same = [p for p in range(clean.shape[1]) if p not in (2, 5)]
    close(denoise.values[0, same], torch.full((len(same),), corrupted_v), atol=1e-5)


def test_other_metrics_match_transformer_lens(setup):
    _, model, clean, corrupted, clean_cache, _, _ = setup
    with torch.no_grad():
        clean_logits = model(clean)
    for metric in (LogProb(answer=5), KLDivergence(clean_logits)):
        close(patch_head_outputs(model, corrupted, clean_cache, metric).values,
              tl_patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric))


def test_different_lengths_get_a_clear_error(setup):
    _, model, clean, _, clean_cache, _, metric = setup
    with pytest.raises(PatchingInputError, match="same number of tokens"):
        patch_residual(model, clean[:, :-1], clean_cache, metric, source_tokens=clean)


def test_progress_chunks_and_cancel(setup):
    _, model, clean, corrupted, clean_cache, _, metric = setup
    seen = []
    small = patch_head_outputs(model, corrupted, clean_cache, metric, max_rows=4, progress=lambda d, t: seen.append((d, t)))
    total = model.cfg.n_layers * model.cfg.n_heads
    assert seen[-1] == (total, total) and len(seen) > model.cfg.n_layers  # chunked: several steps per layer
    close(small.values, patch_head_outputs(model, corrupted, clean_cache, metric).values, atol=1e-5)
    calls = []
    with pytest.raises(Cancelled):
        patch_head_outputs(model, corrupted, clean_cache, metric, max_rows=4, cancel=lambda: len(calls) > 2 or calls.append(1))
    assert not any(m._forward_hooks for m in model.modules())  # no hook left behind


# ----------------------------------------------------------------------------- attribution patching
def test_attribution_is_the_first_order_term(setup):
    """Estimated change = (clean - corrupted) . gradient on the corrupted run, checked against the
    exact patch of a tiny step along that difference (finite differences)."""
    from circuits.attribution import attribution_patching
    from circuits.patching import Patch, _run_patches

    _, model, clean, corrupted, clean_cache, corrupted_cache, metric = setup
    est = attribution_patching(model, clean, corrupted, metric, "head_out")
    assert est.values.shape == (model.cfg.n_layers, model.cfg.n_heads)
    eps = 1e-3
    for l, h in [(0, 1), (model.cfg.n_layers - 1, 2)]:
        name = f"blocks.{l}.attn.hook_z"
        tiny = {name: corrupted_cache[name] + eps * (clean_cache[name] - corrupted_cache[name])}
        value = _run_patches(model, corrupted, tiny, metric, [Patch(l, name, (slice(None), slice(None), h))])[0]
        expected = est.baseline + (est.values[l, h] - est.baseline) * eps
        assert abs(float(value) - expected) < 1e-3 * abs(float(est.values[l, h] - est.baseline)) + 1e-6


def test_attribution_clean_into_clean_is_zero(setup):
    from circuits.attribution import attribution_patching

    _, model, clean, _, _, _, metric = setup
    for sweep in ("resid_pre", "attn_out", "mlp_out", "head_out", "head_out_by_pos", "q", "k", "v", "pattern"):
        est = attribution_patching(model, clean, clean, metric, sweep)
        close(est.values, torch.full_like(est.values, est.baseline), atol=1e-6)


def test_noising_ranks_the_induction_models_heads():
    """Patching each head's output from a run with no repeats into the clean [BOS] + R + R run:
    the heads the model card names hurt the second copy more than every other head."""
    import json
    from pathlib import Path

    from circuits.metrics import Metric
    from scripts.induction_metrics import repeated_sequences, word_ids

    model = load_pretrained("induction-2l", device="cpu")
    card = json.loads((Path(__file__).resolve().parents[2] / "models/zoo/induction-2l/heads.json").read_text())
    named = set(card["induction_heads"]) | set(card["previous_token_heads"])
    words = torch.tensor(word_ids(model.tokenizer, model.cfg.d_vocab))
    bos, R = model.tokenizer.bos_token_id, 20
    clean = repeated_sequences(bos, words.tolist(), R, 32, seed=1)
    gen = torch.Generator().manual_seed(5)
    corrupted = torch.cat([torch.full((32, 1), bos), words[torch.randint(len(words), (32, 2 * R), generator=gen)]], 1)

    class SecondCopyLoss(Metric):
        positions = None

        def per_prompt(self, logits):
            logp = torch.log_softmax(logits[:, R + 1 : -1].float(), -1)
            return -logp.gather(-1, clean[:, R + 2 :, None])[..., 0].mean(-1)

    with torch.no_grad():
        _, corrupted_cache = model.run_with_cache(corrupted)
    result = patch_head_outputs(model, clean, corrupted_cache, SecondCopyLoss())
    effect = {f"L{l}H{h}": float(result.values[l, h]) for l in range(2) for h in range(model.cfg.n_heads)}
    others = [v for k, v in effect.items() if k not in named]
    assert others and min(effect[k] for k in named) > max(others), effect


@pytest.mark.parametrize("vector", ["q", "v", "pattern"])
def test_attribution_of_head_vectors_is_first_order(setup, vector):
    """As for head outputs: the estimate matches an exact patch of a tiny step along clean - corrupted."""
    from circuits.attribution import attribution_patching
    from circuits.patching import Patch, _run_patches

    _, model, clean, corrupted, clean_cache, corrupted_cache, metric = setup
    est = attribution_patching(model, clean, corrupted, metric, vector)
    name = f"blocks.1.attn.hook_{vector}"
    index = (slice(None), 1) if vector == "pattern" else (slice(None), slice(None), 1)
    eps = 1e-3
    tiny = {name: corrupted_cache[name] + eps * (clean_cache[name] - corrupted_cache[name])}
    value = float(_run_patches(model, corrupted, tiny, metric, [Patch(1, name, index)])[0])
    change = float(est.values[1, 1] - est.baseline)
    assert abs(value - est.baseline - eps * change) < 1e-3 * abs(change) + 1e-6
