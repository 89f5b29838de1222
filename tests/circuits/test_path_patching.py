"""Path patching: pinned by the cases where it reduces to something simpler, and by a direct
computation of the sender -> receiver query path."""

from __future__ import annotations

import pytest
import torch

from circuits.metrics import LogitDiff
from circuits.path_patching import path_patching, path_patching_sweep
from circuits.patching import patch_head_outputs
from models import load_pretrained
from tests.hf_reference import random_tokens, save_random_hf_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = load_pretrained(save_random_hf_model("gpt2", tmp_path_factory.mktemp("gpt2")), device="cpu")
    clean = random_tokens(model.cfg.d_vocab, 8, batch=2, seed=3)
    corrupted = clean.clone()
    corrupted[:, 3] = (corrupted[:, 3] + 17) % model.cfg.d_vocab
    return model, clean, corrupted, LogitDiff(5, 9)


def test_trivial_cases(setup):
    model, clean, corrupted, metric = setup
    with torch.no_grad():
        clean_value = float(metric(model(clean)))
    assert path_patching(model, clean, corrupted, metric, []) == pytest.approx(clean_value, abs=1e-5)
    assert path_patching(model, clean, clean, metric, [(0, 1)]) == pytest.approx(clean_value, abs=1e-5)


def test_last_layer_sender_to_resid_is_activation_patching(setup):
    """Nothing but the last MLP is downstream of a last-layer head: with the MLPs recomputed,
    path patching to the final residual is noising activation patching of that head."""
    model, clean, corrupted, metric = setup
    L = model.cfg.n_layers
    _, corrupted_cache = model.run_with_cache(corrupted)
    noising = patch_head_outputs(model, clean, corrupted_cache, metric)
    for h in range(model.cfg.n_heads):
        value = path_patching(model, clean, corrupted, metric, [(L - 1, h)], freeze_mlps=False)
        assert value == pytest.approx(float(noising.values[L - 1, h]), abs=1e-4)
    # freezing the MLPs cuts the path through the last MLP: a different number
    frozen = [path_patching(model, clean, corrupted, metric, [(L - 1, h)]) for h in range(model.cfg.n_heads)]
    assert max(abs(f - float(v)) for f, v in zip(frozen, noising.values[L - 1])) > 1e-5


def test_sender_to_query_is_the_direct_path(setup):
    """Sender L0H1 -> receiver query of L1H2, computed by hand: the receiver's query is recomputed
    from the clean residual plus the sender's direct change, everything else clean."""
    model, clean, corrupted, metric = setup
    names = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_pre", "blocks.1.attn.hook_q"]
    with torch.no_grad():
        _, cc = model.run_with_cache(clean, names_filter=lambda n: n in names)
        _, xc = model.run_with_cache(corrupted, names_filter=lambda n: n in names)
        attn0, block1 = model.blocks[0].attn, model.blocks[1]
        delta = (xc["blocks.0.attn.hook_z"][:, :, 1] - cc["blocks.0.attn.hook_z"][:, :, 1]) @ attn0.W_O[1]
        resid = cc["blocks.1.hook_resid_pre"] + delta
        q = block1.ln1(resid) @ block1.attn.W_Q[2] + block1.attn.b_Q[2]

        def put_q(act, hook):
            act = act.clone()
            act[:, :, 2] = q
            return act

        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_q", put_q)]):
            expected = float(metric(model(clean)))
    value = path_patching(model, clean, corrupted, metric, [(0, 1)], receivers=[("q", 1, 2)])
    assert value == pytest.approx(expected, abs=1e-4)
    with torch.no_grad():
        assert abs(expected - float(metric(model(clean)))) > 1e-5  # the path matters


def test_sweep_shape_progress_and_errors(setup):
    model, clean, corrupted, metric = setup
    seen = []
    result = path_patching_sweep(model, clean, corrupted, metric, receivers=[("v", 1, 0)],
                                 progress=lambda d, t: seen.append((d, t)))
    assert result.values.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert torch.isnan(result.values[1:]).all() and torch.isfinite(result.values[0]).all()
    assert seen[-1] == (model.cfg.n_heads, model.cfg.n_heads)
    single = path_patching(model, clean, corrupted, metric, [(0, 3)], receivers=[("v", 1, 0)])
    assert float(result.values[0, 3]) == pytest.approx(single, abs=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        path_patching(model, clean, corrupted, metric, [(0, 1)], receivers=[("q", 5, 0)])
