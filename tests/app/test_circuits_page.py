"""The Circuits page (QK/OV of a head, copying scores, composition), headless, and its views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import models
from tests.app.test_attention_page import plotly_array
from ui import state
from ui.circuits_view import composition_view, copying_view, head_circuits_view
from ui.i18n import t
from ui.patterns import PromptError

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained("induction-2l")


def open_page(lang="en") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.switch_page("pages/circuits.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def specs(at):
    return {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


@pytest.mark.parametrize("lang", ["es", "en"])
def test_page_shows_the_views_numbers(lang, model):
    at = open_page(lang)
    at.selectbox(key="c_layer").set_value(1).run()
    at.selectbox(key="c_head").set_value(3).run()
    at.text_input(key="c_tokens").input("gato azul tren queso").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = specs(at)
    view = head_circuits_view(model, 1, 3, "gato azul tren queso")
    np.testing.assert_allclose(plotly_array(s[t("circuits.qk_title", lang, layer=1, head=3)]["data"][0]["z"]), view.qk,
                               atol=1e-6)
    np.testing.assert_allclose(plotly_array(s[t("circuits.ov_title", lang, layer=1, head=3)]["data"][0]["z"]), view.ov,
                               atol=1e-6)
    np.testing.assert_allclose(plotly_array(s[t("circuits.copying_title", lang)]["data"][0]["z"]), copying_view(model),
                               atol=1e-6)
    comp = composition_view(model, "K")
    z = plotly_array(s[t("circuits.composition_title", lang, mode="K")]["data"][0]["z"])
    np.testing.assert_allclose(z, comp.matrix - comp.baseline_mean, atol=1e-6)


def test_views_match_circuits(model):
    from circuits.qk_ov import ov_circuit

    view = head_circuits_view(model, 1, 3, "gato azul tren gato")
    assert view.labels == ["gato", "azul", "tren"]  # distinct tokens, no BOS
    ids = [model.to_single_token(w) for w in view.labels]
    dense = (model.W_E[ids] @ model.blocks[1].attn.OV.AB[3] @ model.W_U[:, ids]).detach()
    np.testing.assert_allclose(view.ov, dense.numpy(), atol=1e-5)
    assert torch.equal(torch.tensor(view.ov), ov_circuit(model, 1, head=3, src_tokens=ids).values.float())
    comp = composition_view(model, "K")
    assert np.isnan(comp.matrix[4:, :]).all()  # layer-1 heads write after every reader
    assert comp.top[0][0] in ("L0H3", "L0H1") and comp.top[0][2] > comp.baseline_mean + 3 * comp.baseline_std
    assert (copying_view(model)[1] > 0.9).all()  # the induction heads copy


def test_errors_are_messages(model):
    at = open_page()
    at.text_input(key="c_tokens").input("   ").run()
    assert not at.exception and [e.value for e in at.error] == [t("error.empty_prompt", "en")]
    with pytest.raises(PromptError):
        head_circuits_view(model, 5, 0, "gato")
    translator = models.load_pretrained("translator-es-en")
    with pytest.raises(PromptError):
        copying_view(translator)
