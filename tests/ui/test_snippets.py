""""Copy as code": every snippet runs as shown and reproduces the numbers of its view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models
from ui import state
from ui.interventions import patching_sweep
from ui.patterns import compute_attention_patterns
from ui.residual_view import lens_view
from ui.snippets import attention_snippet, logit_lens_snippet, patching_snippet

PROMPT = "gato azul tren queso gato azul"


def run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "<snippet>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


def as_np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def test_attention_snippet_decoder():
    model = models.load_pretrained("induction-2l")
    expected = compute_attention_patterns(model, PROMPT).head(1, 3)
    ns = run(attention_snippet("induction-2l", PROMPT, "self", 1, 3))
    np.testing.assert_allclose(as_np(ns["pattern"]), expected, atol=1e-6)


def test_attention_snippets_of_a_layer_and_of_every_layer():
    model = models.load_pretrained("induction-2l")
    expected = compute_attention_patterns(model, PROMPT).patterns  # [layer, head, query, key]
    ns = run(attention_snippet("induction-2l", PROMPT, "self", 1, None))
    np.testing.assert_allclose(as_np(ns["patterns"]), expected[1], atol=1e-6)
    ns = run(attention_snippet("induction-2l", PROMPT, "self", None, None))
    np.testing.assert_allclose(as_np(ns["patterns"]), expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_every_layer_snippet_of_each_encoder_decoder_kind(kind):
    model = models.load_pretrained("translator-es-en")
    source = "el gato negro come el pescado"
    expected = compute_attention_patterns(model, source, target="the black cat")[kind].patterns
    ns = run(attention_snippet("translator-es-en", source, kind, None, None, "the black cat"))
    np.testing.assert_allclose(as_np(ns["patterns"]), expected, atol=1e-6)


@pytest.mark.parametrize("target", [None, "the black cat"])
def test_attention_snippet_encoder_decoder(target):
    model = models.load_pretrained("translator-es-en")
    source = "el gato negro come el pescado"
    expected = compute_attention_patterns(model, source, target=target)["cross"].head(1, 0)
    ns = run(attention_snippet("translator-es-en", source, "cross", 1, 0, target))
    np.testing.assert_allclose(as_np(ns["pattern"]), expected, atol=1e-6)


def test_logit_lens_snippet():
    model = models.load_pretrained("induction-2l")
    view = lens_view(model, PROMPT)
    ns = run(logit_lens_snippet("induction-2l", PROMPT, view.target))
    np.testing.assert_allclose(as_np(ns["probs"]), view.target_probs, atol=1e-6)


@pytest.mark.parametrize("sweep", ["head_out", "resid_pre", "attribution_head_out", "path_head_to_logits"])
def test_patching_snippet(sweep):
    model = models.load_pretrained("induction-2l")
    clean, corrupted = "gato azul tren queso gato azul tren", "gato azul tren queso perro azul tren"
    view = patching_sweep(model, clean, corrupted, " queso", " perro", sweep)
    ns = run(patching_snippet("induction-2l", clean, corrupted, " queso", " perro", sweep))
    # normalized by a small clean - corrupted gap (0.18 here): float noise of ~1e-6 becomes ~1e-5
    np.testing.assert_allclose(as_np(ns["values"]), view.values, atol=1e-4)


def test_prompts_with_quotes_are_safe():
    code = attention_snippet("induction-2l", 'gato "azul" \'tren\'\nqueso', "self", 0, 0)
    ns = run(code)
    assert ns["pattern"].shape[0] == ns["tokens"].shape[1]


def test_attention_page_shows_the_snippet():
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=90)
    at.session_state[state.LANG_KEY] = "en"
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.text_area(key=state.PROMPT_KEY).input(PROMPT).run()
    assert not at.exception
    codes = [c.value for c in at.code]
    assert attention_snippet("induction-2l", PROMPT, "self", 0, 0).strip() in [c.strip() for c in codes]


# ----------------------------------------------------------------------------- ablation, neurons, positions, SVD

TINY_PROMPT = "The cat sat on the mat. The cat sat"


@pytest.mark.parametrize("case", ["heads_and_layer", "mean", "nothing"])
def test_ablation_snippet(case):
    from ui.interventions import ablation_predictions
    from ui.snippets import ablation_snippet

    model = models.load_pretrained("induction-2l")
    prompt, reference = "gato azul tren queso gato azul tren", "rojo verde mesa silla casa perro"
    heads, layers, kind = {"heads_and_layer": (["L1H3", "L0H1"], ["ATTN0"], "zero"),
                           "mean": (["L1H3"], ["ATTN0"], "mean"), "nothing": ([], [], "zero")}[case]
    view = ablation_predictions(model, prompt, heads, kind, reference, layers=layers)
    ns = run(ablation_snippet("induction-2l", prompt, view.ablations, reference))
    np.testing.assert_allclose(as_np(ns["clean_probs"]), view.clean.probs, rtol=1e-6)
    np.testing.assert_allclose(as_np(ns["ablated_probs"]), view.ablated.probs, rtol=1e-6)
    assert ns["result"].loss == pytest.approx(view.ablated_loss)
    assert len(ns["ablations"]) == len(heads) + len(layers)


def test_ablation_snippet_with_neurons(tiny_gpt2_dir):
    from ui.interventions import ablation_predictions
    from ui.snippets import ablation_snippet

    tiny = models.load_pretrained(str(tiny_gpt2_dir))
    view = ablation_predictions(tiny, TINY_PROMPT, [], layers=["MLP1"], neurons="L0N3, L0N200")
    ns = run(ablation_snippet(str(tiny_gpt2_dir), TINY_PROMPT, view.ablations))
    np.testing.assert_allclose(as_np(ns["ablated_probs"]), view.ablated.probs, rtol=1e-6)
    assert [(a.target, a.layer, a.index) for a in ns["ablations"]] == [("mlp", 1, None), ("neuron", 0, 3),
                                                                       ("neuron", 0, 200)]


@pytest.mark.parametrize("wrong", ["", " the"])
def test_neuron_attribution_snippet(wrong, tiny_gpt2_dir):
    from ui.residual_view import neuron_attribution_view
    from ui.snippets import neuron_attribution_snippet

    tiny = models.load_pretrained(str(tiny_gpt2_dir))
    view = neuron_attribution_view(tiny, TINY_PROMPT, " on", wrong, 0, 6)
    ns = run(neuron_attribution_snippet(str(tiny_gpt2_dir), TINY_PROMPT, " on", wrong, 0, 6))
    assert as_np(ns["neurons"]).tolist() == view.neurons.tolist()
    np.testing.assert_allclose(as_np(ns["values"]), view.values, rtol=1e-6)
    assert float(ns["total"]) == pytest.approx(view.total, abs=1e-6)


@pytest.mark.parametrize("positions", ["standard", "rotary", "alibi"])
def test_positional_snippet(positions, tmp_path):
    from tests.app.test_circuits_page import build_native_checkpoint
    from ui.circuits_view import positional_view
    from ui.snippets import positional_snippet

    if positions == "standard":
        key = "induction-2l"
    else:
        key = str(build_native_checkpoint(tmp_path / positions, positions))
    model = models.load_pretrained(key)
    probe = "gato azul tren queso gato"
    view = positional_view(model, 1, 2, 9, probe)
    assert view.kind == {"standard": "table"}.get(positions, positions)
    ns = run(positional_snippet(key, 1, 2, view.kind, 9, probe))
    np.testing.assert_allclose(as_np(ns["values"]), view.values, rtol=1e-5, atol=1e-7)  # NaN in the same places


def test_positional_snippet_refuses_models_without_positions():
    from ui.snippets import positional_snippet

    with pytest.raises(ValueError):
        positional_snippet("x", 0, 0, "none", 4)


def test_svd_snippet():
    from ui.circuits_view import svd_view
    from ui.snippets import svd_snippet

    model = models.load_pretrained("induction-2l")
    view = svd_view(model, 1, 3, 3, 8)
    ns = run(svd_snippet("induction-2l", 1, 3, 3, 8))
    np.testing.assert_allclose(as_np(ns["S"]), view.singular_values, rtol=1e-6)
    assert ns["svd"].read_top_labels == view.read_top and ns["svd"].write_top_labels == view.write_top


# ----------------------------------------------------------------------------- residual, circuits, detectors
@pytest.mark.parametrize("wrong", ["", " perro"])
def test_attribution_snippet(wrong):
    from ui.residual_view import attribution_view
    from ui.snippets import attribution_snippet

    model = models.load_pretrained("induction-2l")
    view = attribution_view(model, PROMPT, " tren", wrong)
    ns = run(attribution_snippet("induction-2l", PROMPT, " tren", wrong))
    np.testing.assert_allclose(as_np(ns["per_layer"]), view.per_layer, atol=1e-5)
    np.testing.assert_allclose(as_np(ns["heads"]), view.heads, atol=1e-5)
    assert float(ns["dla"].logit[0]) == pytest.approx(view.logit, abs=1e-5)


@pytest.mark.parametrize("by_layer", [False, True])
def test_decomposition_snippet(by_layer, tiny_gpt2_dir):
    from ui.residual_view import decomposition_view
    from ui.snippets import decomposition_snippet

    model = models.load_pretrained(str(tiny_gpt2_dir))
    prompt = "The cat sat on the mat"
    view = decomposition_view(model, prompt, 3, by_layer=by_layer)
    ns = run(decomposition_snippet(str(tiny_gpt2_dir), prompt, view.position, by_layer))
    np.testing.assert_allclose(as_np(ns["shares"]), view.shares, atol=1e-6)
    np.testing.assert_allclose(as_np(ns["norms"]), view.norms, rtol=1e-5)
    assert list(ns["labels"]) == view.labels
    assert float(ns["shares"].sum()) == pytest.approx(1.0, abs=1e-5)  # the identity the page prints


def test_detector_snippet():
    from ui.patterns import detector_scores
    from ui.snippets import detector_snippet

    model = models.load_pretrained("induction-2l")
    expected = detector_scores(model, PROMPT)
    for name in ("induction", "previous_token"):
        ns = run(detector_snippet("induction-2l", PROMPT, name))
        np.testing.assert_allclose(as_np(ns["scores"]), expected[name], atol=1e-6)


def test_head_circuits_snippet():
    from ui.circuits_view import head_circuits_view
    from ui.snippets import head_circuits_snippet

    model = models.load_pretrained("induction-2l")
    view = head_circuits_view(model, 1, 3, PROMPT)
    ns = run(head_circuits_snippet("induction-2l", 1, 3, PROMPT))
    np.testing.assert_allclose(as_np(ns["qk"]), view.qk, atol=1e-5)
    np.testing.assert_allclose(as_np(ns["ov"]), view.ov, atol=1e-5)


def test_copying_and_composition_snippets():
    from ui.circuits_view import composition_view, copying_view
    from ui.snippets import composition_snippet, copying_snippet

    model = models.load_pretrained("induction-2l")
    np.testing.assert_allclose(as_np(run(copying_snippet("induction-2l"))["scores"]), copying_view(model), atol=1e-6)
    view = composition_view(model, "K")
    ns = run(composition_snippet("induction-2l", "K"))
    scores = as_np(ns["scores"])
    np.testing.assert_allclose(scores.reshape(view.matrix.shape), view.matrix, atol=1e-6)
    assert float(ns["result"].baseline.mean) == pytest.approx(view.baseline_mean)


@pytest.mark.parametrize("kind", ["encoder", "decoder", "cross"])
def test_circuit_snippets_of_each_encoder_decoder_attention(kind):
    from ui.circuits_view import composition_view, copying_view, head_circuits_view, positional_view, svd_view
    from ui.snippets import (composition_snippet, copying_snippet, head_circuits_snippet, positional_snippet,
                             svd_snippet)

    model = models.load_pretrained("translator-es-en")
    source, target = "el gato negro come el pescado", "the black cat eats the fish"
    view = head_circuits_view(model, 1, 2, source, kind, target)
    ns = run(head_circuits_snippet("translator-es-en", 1, 2, source, kind, target))
    np.testing.assert_allclose(as_np(ns["qk"]), view.qk, atol=1e-5)
    np.testing.assert_allclose(as_np(ns["ov"]), view.ov, atol=1e-5)
    ns = run(copying_snippet("translator-es-en", kind))
    np.testing.assert_allclose(as_np(ns["scores"]), copying_view(model, kind), atol=1e-6)
    comp = composition_view(model, "V", kind)
    ns = run(composition_snippet("translator-es-en", "V", kind))
    np.testing.assert_allclose(as_np(ns["scores"]).reshape(comp.matrix.shape), comp.matrix, atol=1e-6)
    pos = positional_view(model, 0, 1, 12, "", kind)
    ns = run(positional_snippet("translator-es-en", 0, 1, pos.kind, 12, "", kind))
    np.testing.assert_allclose(as_np(ns["values"]), pos.values, atol=1e-5)  # NaN in the same places
    svd = svd_view(model, 1, 2, 2, 8, kind)
    ns = run(svd_snippet("translator-es-en", 1, 2, 2, 8, kind))
    np.testing.assert_allclose(as_np(ns["S"]), svd.singular_values, rtol=1e-5)
