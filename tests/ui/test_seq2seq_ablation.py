"""Ablation of the translator's heads, read on its translation (ui.seq2seq_ablation), its page
and its snippet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import models
from ui import state
from ui.i18n import t
from ui.patterns import PromptError
from ui.seq2seq_ablation import ablation_hooks, seq2seq_head_names, translation_ablation

APP = Path(__file__).resolve().parents[2] / "app.py"
SOURCE = "el gato negro come el pescado"
ALL_CROSS = [f"CL{l}H{h}" for l in range(2) for h in range(4)]


@pytest.fixture(scope="module")
def model():
    return models.load_pretrained("translator-es-en")


def hooks_left(model) -> int:
    return sum(len(hp._forward_hooks) for hp in model.hook_dict.values())


def test_head_names_cover_the_three_attentions(model):
    names = seq2seq_head_names(model)
    assert names[:2] == ["EL0H0", "EL0H1"] and "DL1H3" in names and names[-1] == "CL1H3"
    assert len(names) == 3 * 2 * 4


def test_nothing_ablated_is_the_normal_run(model):
    out = translation_ablation(model, SOURCE, [])
    assert out.normal_text == out.ablated_text == "the black cat eats the fish"
    np.testing.assert_array_equal(out.normal_probs, out.ablated_probs)
    assert out.tokens[:3] == ("the", "black", "cat") and out.tokens[-1] == "</s>"
    assert out.normal_loss == pytest.approx(float(-np.log(out.normal_probs.astype(np.float64)).mean()), abs=1e-6)


def test_zeroing_every_cross_attention_head_loses_the_source(model):
    """Without cross-attention the decoder cannot read the Spanish: the translation breaks and
    the normal translation's loss rises; the hooks are gone afterwards."""
    out = translation_ablation(model, SOURCE, ALL_CROSS)
    assert out.ablated_text != out.normal_text
    assert out.ablated_loss > out.normal_loss + 1.0
    assert hooks_left(model) == 0


def test_zeroing_a_head_equals_zeroing_its_z_by_hand(model):
    """The ablated probabilities are those of a forward pass with that head's z set to 0."""
    out = translation_ablation(model, SOURCE, ["CL1H2", "EL0H1"])
    src = model.to_tokens(SOURCE)
    tgt = model.generate(src, max_new_tokens=48)

    def zero(head):
        def fn(z, hook):
            z = z.clone()
            z[:, :, head] = 0
            return z
        return fn

    with model.hooks(fwd_hooks=[("decoder.blocks.1.cross_attn.hook_z", zero(2)),
                                ("encoder.blocks.0.attn.hook_z", zero(1))]):
        logits = model(src, tgt)[0, :-1].double()
    expected = torch.softmax(logits, -1).gather(-1, tgt[0, 1:, None])[:, 0]
    np.testing.assert_allclose(out.ablated_probs, expected.detach().float().numpy(), atol=1e-6)


@pytest.mark.parametrize("bad", ["L1H3", "CL9H0", "XL0H0", "CL0H7"])
def test_unknown_heads_are_messages(model, bad):
    with pytest.raises(PromptError) as err:
        ablation_hooks(model, [bad])
    assert err.value.code == "unknown_head"


def test_decoder_models_are_refused():
    with pytest.raises(PromptError) as err:
        translation_ablation(models.load_pretrained("induction-2l"), "gato", [])
    assert err.value.code == "seq2seq_only"


def test_snippet_reproduces_the_view(model):
    from ui.snippets import translation_ablation_snippet

    heads = ["CL1H0", "CL1H1", "CL1H2", "CL1H3"]
    out = translation_ablation(model, SOURCE, heads)
    namespace: dict = {}
    exec(compile(translation_ablation_snippet("translator-es-en", SOURCE, heads), "<snippet>", "exec"), namespace)
    assert namespace["normal"].strip() == out.normal_text and namespace["ablated"].strip() == out.ablated_text
    np.testing.assert_allclose(namespace["ablated_probs"].detach().float().numpy(), out.ablated_probs, atol=1e-6)
    np.testing.assert_allclose(namespace["probs"].detach().float().numpy(), out.normal_probs, atol=1e-6)


@pytest.mark.parametrize("lang", ["es", "en"])
def test_the_page_shows_the_translations(lang, model):
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "translator-es-en"
    at.run()
    at.switch_page("pages/interventions.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.text_area(key="abl_source").value == SOURCE  # the translator's demo sentence
    at.multiselect(key="abl_seq2seq_heads").select("CL0H0").select("CL0H1").select("CL0H2").select("CL0H3")
    for h in range(4):
        at.multiselect(key="abl_seq2seq_heads").select(f"CL1H{h}")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    out = translation_ablation(model, SOURCE, ALL_CROSS)
    shown = [w.value for w in at.warning]
    assert t("interventions.translation_ablated", lang, text=out.ablated_text, items=", ".join(
        at.multiselect(key="abl_seq2seq_heads").value)) in shown
    assert t("interventions.translation_normal", lang, text=out.normal_text) in [i.value for i in at.info]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("interventions.loss_ablated", lang)] == f"{out.ablated_loss:.3f}"
    assert t("interventions.patch_decoder_only", lang, name="translator-es-en") in [i.value for i in at.info]
    at.multiselect(key="abl_seq2seq_heads").set_value([]).run()
    at.text_area(key="abl_source").input("  ").run()  # bad input: a message, the page goes on
    assert [e.value for e in at.error] == [t("error.empty_prompt", lang)]
