"""The Ablate & patch page, headless (AppTest) on the shipped induction model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models
from ui import state
from ui.i18n import t
from ui.interventions import ablation_predictions, patching_sweep

APP = Path(__file__).resolve().parents[2] / "app.py"
PAGE = "pages/interventions.py"
CLEAN = "gato azul tren queso gato azul tren"
CORRUPTED = "gato azul tren queso perro azul tren"


def plotly_z(spec) -> np.ndarray:
    from tests.app.test_attention_page import plotly_array

    return plotly_array(spec["data"][0]["z"])


def open_page(lang="en") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained("induction-2l")


@pytest.mark.parametrize("lang", ["es", "en"])
def test_ablation_changes_predictions(lang, model):
    at = open_page(lang)
    assert at.title[0].value == t("interventions.title", lang)
    at.text_area(key="abl_prompt").input(CLEAN).run()
    at.multiselect(key="abl_heads").select("L1H3").select("L0H3").run()
    assert not at.exception and not at.error
    expected = ablation_predictions(model, CLEAN, ["L1H3", "L0H3"])
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 1
    bars = charts[0]["data"]
    from tests.app.test_attention_page import plotly_array

    np.testing.assert_allclose(plotly_array(bars[0]["x"]), expected.clean.probs, atol=1e-6)
    np.testing.assert_allclose(plotly_array(bars[1]["x"]), expected.ablated.probs, atol=1e-6)
    assert expected.clean.tokens[0] == "queso" and expected.ablated.tokens[0] != "queso"  # induction broken
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("interventions.loss_ablated", lang)] == f"{expected.ablated_loss:.3f}"


def test_mean_ablation_needs_a_reference():
    at = open_page()
    at.text_area(key="abl_prompt").input(CLEAN).run()
    at.multiselect(key="abl_heads").select("L1H3").run()
    at.radio(key="abl_kind").set_value("mean").run()
    assert not at.error  # the shipped model's demo reference text
    at.text_input(key="abl_reference").input("").run()
    assert [e.value for e in at.error] == [t("error.no_reference", "en")]
    at.text_input(key="abl_reference").input("rojo verde mesa silla casa perro").run()
    assert not at.error and len(at.get("plotly_chart")) == 1


def test_patching_sweep_runs_and_matches(model):
    at = open_page()
    at.tabs  # noqa: B018 - both tabs render in AppTest
    at.text_input(key="p_clean").input(CLEAN).run()
    at.text_input(key="p_corrupted").input(CORRUPTED).run()
    at.text_input(key="p_answer").input(" queso").run()
    at.text_input(key="p_wrong").input(" perro").run()
    at.selectbox(key="p_sweep").set_value("head_out").run()
    assert t("interventions.press_run", "en") in [i.value for i in at.info]
    at.button(key="p_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = patching_sweep(model, CLEAN, CORRUPTED, " queso", " perro", "head_out")
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    sweep = [s for s in specs if s["layout"]["title"]["text"] == t("interventions.sweep.head_out", "en")]
    assert len(sweep) == 1
    np.testing.assert_allclose(plotly_z(sweep[0]), expected.values, atol=1e-5)
    assert expected.values.shape == (2, 4) and np.nanmax(expected.values) > 0.3


def test_patching_errors_are_messages():
    at = open_page()
    at.text_input(key="p_clean").input(CLEAN).run()
    at.text_input(key="p_corrupted").input(CLEAN + " gato").run()
    at.button(key="p_run").click().run()
    assert not at.exception
    assert any("tokens" in e.value for e in at.error)
    at.text_input(key="p_corrupted").input(CORRUPTED).run()
    at.text_input(key="p_answer").input(" two words").run()
    at.button(key="p_run").click().run()
    assert not at.exception and any("two words" in e.value for e in at.error)


def test_path_patching_sweep_view(model):
    from circuits.metrics import LogitDiff
    from circuits.path_patching import path_patching

    table = patching_sweep(model, CLEAN, CORRUPTED, " queso", " perro", "path_head_to_logits")
    assert table.values.shape == (2, 4)
    clean, corrupted = model.to_tokens(CLEAN), model.to_tokens(CORRUPTED)
    metric = LogitDiff(model.to_single_token(" queso"), model.to_single_token(" perro"))
    value = path_patching(model, clean, corrupted, metric, [(1, 3)])
    expected = (table.clean - value) / (table.clean - table.corrupted)
    assert float(table.values[1, 3]) == pytest.approx(expected, abs=1e-4)


# ----------------------------------------------------------------------------- heads, layers, neurons


def chart_bars(at) -> list[np.ndarray]:
    from tests.app.test_attention_page import plotly_array

    (spec,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
               if json.loads(c.proto.spec)["layout"]["title"]["text"] in
               (t("interventions.predictions_title", "es"), t("interventions.predictions_title", "en"))]
    return [plotly_array(trace["x"]) for trace in spec["data"]]


def direct(model, prompt, ablations, reference=None, k=8):
    """Top-k probabilities of both runs and the ablated loss, from circuits.ablation.ablate itself."""
    import torch

    from circuits.ablation import ablate

    r = ablate(model, model.to_tokens(prompt), ablations,
               reference=None if reference is None else model.to_tokens(reference))
    top = [torch.softmax(logits[0, -1].float(), -1).topk(k).values.numpy() for logits in (r.clean_logits, r.logits)]
    return top[0], top[1], r.loss


def open_folder_page(lang, folder) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.run()
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(folder)).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("lang", ["es", "en"])
def test_heads_and_layers_shown_equal_ablate_called_directly(lang, model):
    from circuits.ablation import Ablation

    at = open_page(lang)
    assert at.multiselect(key="abl_layers").options == ["ATTN0", "ATTN1"]  # attention-only: no MLP0
    assert "abl_neurons" not in [w.key for w in at.text_input]  # and no neuron field
    at.text_area(key="abl_prompt").input(CLEAN).run()
    at.multiselect(key="abl_heads").select("L0H3").run()
    at.multiselect(key="abl_layers").select("ATTN1").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    clean, ablated, loss = direct(model, CLEAN, [Ablation("head", 0, 3), Ablation("attn", 1)])
    shown_clean, shown_ablated = chart_bars(at)
    np.testing.assert_allclose(shown_clean, clean, rtol=1e-6)
    np.testing.assert_allclose(shown_ablated, ablated, rtol=1e-6)
    assert np.abs(shown_ablated - shown_clean).max() > 0.05  # the induction head's layer is gone
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("interventions.loss_ablated", lang)] == f"{loss:.3f}"
    caption = t("interventions.ablated_list", lang, kind=t("interventions.kind.zero", lang), items="L0H3, ATTN1")
    assert caption in [c.value for c in at.caption]


def test_all_heads_of_a_layer_equal_the_attention_layer(model):
    at = open_page()
    at.text_area(key="abl_prompt").input(CLEAN).run()
    ms = at.multiselect(key="abl_heads")
    for h in range(4):
        ms = ms.select(f"L1H{h}")
    ms.run()
    assert not at.error
    clean, by_heads = chart_bars(at)
    at.multiselect(key="abl_heads").set_value([]).run()
    at.multiselect(key="abl_layers").select("ATTN1").run()
    assert not at.exception and not at.error
    clean_again, by_layer = chart_bars(at)
    np.testing.assert_allclose(clean_again, clean)
    np.testing.assert_allclose(by_layer, by_heads, rtol=1e-6)
    assert np.abs(by_layer - clean).max() > 0.05
    other = ablation_predictions(model, CLEAN, [], layers=["ATTN0"])  # a different layer differs
    assert np.abs(np.asarray(other.ablated.probs) - by_layer).max() > 1e-3
    # the pure function agrees, and three of four heads are not the layer
    heads = ablation_predictions(model, CLEAN, [f"L1H{h}" for h in range(4)])
    layer = ablation_predictions(model, CLEAN, [], layers=["ATTN1"])
    assert heads.ablated.tokens == layer.ablated.tokens and heads.ablated_loss == pytest.approx(layer.ablated_loss)
    three = ablation_predictions(model, CLEAN, [f"L1H{h}" for h in range(3)])
    assert three.ablated_loss != pytest.approx(layer.ablated_loss)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_nothing_ablated_shows_the_normal_predictions(lang, model):
    at = open_page(lang)
    at.text_area(key="abl_prompt").input(CLEAN).run()
    at.radio(key="abl_kind").set_value("mean").run()  # no reference needed when nothing is ablated
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert t("interventions.nothing_ablated", lang) in [i.value for i in at.info]
    (shown,) = chart_bars(at)  # one run only
    clean, _, _ = direct(model, CLEAN, [])
    np.testing.assert_allclose(shown, clean, rtol=1e-6)
    assert t("interventions.loss_ablated", lang) not in [m.label for m in at.metric]
    at.text_input(key="abl_reference").input("").run()
    assert not at.error
    at.multiselect(key="abl_layers").select("ATTN0").run()  # something ablated: the reference is needed again
    assert [e.value for e in at.error] == [t("error.no_reference", lang)]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_neuron_ablation_on_a_model_with_mlps(lang, tiny_gpt2_dir):
    from circuits.ablation import Ablation

    prompt, reference = "The cat sat on the mat. The cat sat", "one two three four five"
    tiny = models.load_pretrained(str(tiny_gpt2_dir))
    at = open_folder_page(lang, tiny_gpt2_dir)
    assert at.multiselect(key="abl_layers").options == ["ATTN0", "ATTN1", "MLP0", "MLP1"]
    at.text_area(key="abl_prompt").input(prompt).run()
    at.text_input(key="abl_neurons").input("L0N12, L1N5").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    clean, ablated, loss = direct(tiny, prompt, [Ablation("neuron", 0, 12), Ablation("neuron", 1, 5)])
    shown_clean, shown_ablated = chart_bars(at)
    np.testing.assert_allclose(shown_clean, clean, rtol=1e-6)
    np.testing.assert_allclose(shown_ablated, ablated, rtol=1e-6)
    assert np.abs(shown_ablated - shown_clean).max() > 1e-5  # the neurons did change the output
    # mean ablation of the neurons and of a whole MLP, over a reference text
    at.multiselect(key="abl_layers").select("MLP0").run()
    at.radio(key="abl_kind").set_value("mean").run()
    at.text_input(key="abl_reference").input(reference).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ablations = [Ablation("mlp", 0, kind="mean"), Ablation("neuron", 0, 12, kind="mean"),
                 Ablation("neuron", 1, 5, kind="mean")]
    _, ablated, loss = direct(tiny, prompt, ablations, reference)
    np.testing.assert_allclose(chart_bars(at)[1], ablated, rtol=1e-6)
    assert {m.label: m.value for m in at.metric}[t("interventions.loss_ablated", lang)] == f"{loss:.3f}"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_bad_neurons_are_messages(lang, tiny_gpt2_dir):
    at = open_folder_page(lang, tiny_gpt2_dir)
    cases = [
        ("L0N12, L0X3", "error.neuron_syntax", {"item": "L0X3"}),
        ("12", "error.neuron_syntax", {"item": "12"}),
        ("L-1N3", "error.neuron_out_of_range", {"item": "L-1N3", "n_layers": 1, "d_mlp": 255}),
        ("L0N-2", "error.neuron_out_of_range", {"item": "L0N-2", "n_layers": 1, "d_mlp": 255}),
        ("L0N256", "error.neuron_out_of_range", {"item": "L0N256", "n_layers": 1, "d_mlp": 255}),
        ("L2N0", "error.neuron_out_of_range", {"item": "L2N0", "n_layers": 1, "d_mlp": 255}),
    ]
    for text, key, details in cases:
        at.text_input(key="abl_neurons").input(text).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error] == [t(key, lang, **details)], text
    at.text_input(key="abl_neurons").input("l0n255;L1N0").run()  # any case, ; or , between
    assert not at.exception and not at.error
    assert t("interventions.ablated_list", lang, kind=t("interventions.kind.zero", lang), items="L0N255, L1N0") in [
        c.value for c in at.caption]


def test_neuron_parsing_and_attention_only_models(model):
    from ui.interventions import parse_neurons
    from ui.patterns import PromptError

    with pytest.raises(PromptError) as err:
        ablation_predictions(model, CLEAN, [], neurons="L0N1")
    assert err.value.code == "no_mlp"
    with pytest.raises(PromptError) as err:
        ablation_predictions(model, CLEAN, [], layers=["MLP0"])
    assert err.value.code == "no_mlp"
    cfg = type("Cfg", (), dict(attn_only=False, d_mlp=8, n_layers=2))()
    assert parse_neurons(" L1N7 ,L0n0  L1N7", cfg) == [(1, 7), (0, 0)]
    assert parse_neurons([(0, 3), "L1N2"], cfg) == [(0, 3), (1, 2)]
    assert parse_neurons("  ", cfg) == []


def test_ablation_page_shows_its_snippet():
    from ui.snippets import ablation_snippet

    at = open_page()
    at.text_area(key="abl_prompt").input(CLEAN).run()
    at.multiselect(key="abl_layers").select("ATTN1").run()
    out = ablation_predictions(models.load_pretrained("induction-2l"), CLEAN, [], layers=["ATTN1"])
    assert ablation_snippet("induction-2l", CLEAN, out.ablations, "").strip() in [c.value.strip() for c in at.code]
