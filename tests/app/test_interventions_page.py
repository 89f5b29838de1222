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
