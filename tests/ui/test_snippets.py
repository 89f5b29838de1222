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
