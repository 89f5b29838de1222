"""The Model page: architecture diagram with equations, hook names and live shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import models
from ui import state
from ui.i18n import t
from ui.model_view import architecture_dot, stages

APP = Path(__file__).resolve().parents[2] / "app.py"


def test_stages_shapes_are_the_cache_shapes():
    model = models.load_pretrained("induction-2l")
    rows = stages(model, "gato azul tren")
    by_key = {s.key: s for s in rows}
    _, cache = model.run_with_cache(model.to_tokens("gato azul tren"))
    for s in rows:
        if s.hook:
            assert s.shape == tuple(cache[s.hook].shape), s
    assert by_key["pattern"].shape == (1, 4, 4, 4) and by_key["logits"].shape == (1, 4, model.cfg.d_vocab)
    assert "mlp_post" not in by_key  # attention-only
    assert by_key["pos_standard"].hook == "hook_pos_embed"


def test_encoder_decoder_has_both_stacks_and_cross_attention():
    model = models.load_pretrained("translator-es-en")
    rows = stages(model, "el gato negro")
    keys = [(s.stack, s.key) for s in rows]
    assert ("encoder.", "pos_sinusoidal") in keys and ("decoder.", "cross_pattern") in keys
    cross = next(s for s in rows if s.key == "cross_pattern")
    assert cross.hook == "decoder.blocks.0.cross_attn.hook_pattern" and cross.shape[-1] == 4  # 3 words + </s>
    dot = architecture_dot(rows, lambda k: k, "x 2")
    assert dot.startswith("digraph") and 'label="K, V"' in dot and dot.count("->") >= len(rows) - 2
    assert 'label="encoder · x 2"' in dot and 'label="decoder · x 2"' in dot
    # no target text: the decoder reads the model's own translation, "<s> the black </s>"
    generated = model.generate(model.to_tokens("el gato negro"), max_new_tokens=32)
    assert generated.shape[1] > 2
    assert next(s for s in rows if s.key == "cross_pattern").shape[-2] == generated.shape[1]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_page_renders(lang):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.switch_page("pages/model.py").run()
    assert not at.exception and not at.error
    assert at.title[0].value == t("model.title", lang)
    table = at.dataframe[0].value
    assert t("model.stage.pattern", lang) in list(table[t("model.col.stage", lang)])
    assert "blocks.0.attn.hook_pattern" in list(table[t("model.col.hook", lang)])
    at.text_input(key="model_prompt").input("   ").run()
    assert [e.value for e in at.error] == [t("error.empty_prompt", lang)]


def test_dot_labels_break_lines_and_escape_quotes():
    from ui.model_view import Stage

    dot = architecture_dot([Stage("q", "blocks.0.attn.hook_q", (1, 2), 'Q = "W_Q" X')], lambda k: "Queries", "x 1")
    assert 'label="Queries\\nQ = \\"W_Q\\" X\\nblocks.0.attn.hook_q\\n[1, 2]"' in dot
