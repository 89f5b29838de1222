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


def open_page(lang="en", model_name="induction-2l") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = model_name
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
    with pytest.raises(PromptError) as err:
        head_circuits_view(model, 1, 0, "<bos>")  # only special tokens: nothing to show
    assert err.value.code == "no_tokens"


# ----------------------------------------------------------------------------- positions and SVD

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo" / "induction-2l"


def build_native_checkpoint(folder: Path, positions: str, seed: int = 0) -> Path:
    """A tiny random decoder (2 layers, 4 heads, MLPs) with ``positions`` (rotary, alibi, none,
    sinusoidal), saved with induction-2l's tokenizer so the app can open it from the sidebar."""
    import shutil

    from models import ModelConfig, Transformer, save_native

    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_vocab=481, n_ctx=64, d_mlp=64,
                      positional_embedding_type=positions, model_name=f"tiny-{positions}")
    save_native(Transformer(cfg).init_weights(seed).eval(), folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ZOO / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    root = tmp_path_factory.mktemp("native")
    return {p: build_native_checkpoint(root / p, p) for p in ("rotary", "alibi", "none")}


def open_view(lang, view, folder=None, layer=0, head=0) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    if folder is not None:
        at.text_input(key=state.MODEL_FOLDER_KEY).input(str(folder)).run()
    at.switch_page("pages/circuits.py").run()
    at.selectbox(key="c_layer").set_value(layer).run()
    at.selectbox(key="c_head").set_value(head).run()
    at.radio(key="c_view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("lang", ["es", "en"])
def test_positional_qk_of_learned_positions(lang, model):
    from circuits.qk_ov import positional_qk_circuit

    at = open_view(lang, "positions", layer=0, head=3)
    at.number_input(key="c_positions").set_value(12).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    z = plotly_array(specs(at)[t("circuits.pos_title", lang, layer=0, head=3)]["data"][0]["z"])
    expected = positional_qk_circuit(model, 0, head=3, query_positions=range(12), scaled=True).values.numpy()
    lower = np.tril(np.ones((12, 12), bool))
    assert z.shape == (12, 12)
    np.testing.assert_allclose(z[lower], expected[lower], rtol=1e-5, atol=1e-7)
    assert np.isnan(z[~lower]).all()  # keys after the query: a causal model never sees them
    # L0H3 is a previous-token head: through positions alone, each query prefers the key just before it
    prev = np.array([z[q, q - 1] for q in range(2, 12)])
    assert (prev > np.array([np.nanmean(np.delete(z[q, : q + 1], q - 1)) for q in range(2, 12)])).mean() > 0.7
    assert t("circuits.pos_intro", lang) in [c.value for c in at.caption]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_rotary_alibi_and_no_positions(lang, native):
    import torch

    from circuits.qk_ov import rotary_qk_by_offset
    from models.components.positions import alibi_slopes

    # rotary: the score by offset, next to the probe's own mean score
    probe = "gato azul tren queso gato azul tren queso"
    at = open_view(lang, "positions", native["rotary"], layer=1, head=2)
    at.number_input(key="c_positions").set_value(16).run()
    at.text_input(key="c_probe").input(probe).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rot = models.load_pretrained(str(native["rotary"]))
    expected = rotary_qk_by_offset(rot, 1, rot.to_tokens(probe), head=[2], offsets=range(16))
    traces = specs(at)[t("circuits.rotary_title", lang, layer=1, head=2)]["data"]
    assert [tr["name"] for tr in traces] == [t("circuits.mean_qk", lang), t("circuits.observed", lang)]
    np.testing.assert_allclose(plotly_array(traces[0]["x"]), np.arange(16))
    np.testing.assert_allclose(plotly_array(traces[0]["y"]), expected.mean_qk[0].numpy(), rtol=1e-5, atol=1e-7)
    observed = np.array([np.nan if v is None else v for v in traces[1]["y"]], dtype=float) \
        if isinstance(traces[1]["y"], list) else plotly_array(traces[1]["y"])
    np.testing.assert_allclose(observed, expected.observed[0].numpy(), rtol=1e-5, atol=1e-7)  # NaN past the probe
    at.text_input(key="c_probe").input("  ").run()
    assert not at.exception and [e.value for e in at.error] == [t("error.empty_prompt", lang)]

    # ALiBi: the head's slope and its bias -m * offset
    at = open_view(lang, "positions", native["alibi"], layer=0, head=1)
    at.number_input(key="c_positions").set_value(10).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    slope = float(alibi_slopes(4)[1])
    assert t("circuits.alibi_slope", lang, slope=slope) in [i.value for i in at.info]
    (trace,) = specs(at)[t("circuits.alibi_title", lang, layer=0, head=1)]["data"]
    np.testing.assert_allclose(plotly_array(trace["y"]), -slope * torch.arange(10).numpy(), rtol=1e-6)

    # no positional parameters: an info line, no chart
    at = open_view(lang, "positions", native["none"], layer=0, head=0)
    assert not at.exception and not at.error
    assert t("circuits.no_positions", lang, name=str(native["none"].resolve())) in [i.value for i in at.info]
    keys = ("circuits.pos_title", "circuits.rotary_title", "circuits.alibi_title")
    titles = {t(k, lang, layer=0, head=0) for k in keys}
    assert not titles & set(specs(at))
    assert t("circuits.copying_title", lang) in specs(at)  # the rest of the page is there


@pytest.mark.parametrize("lang", ["es", "en"])
def test_ov_svd_view(lang, model):
    from circuits.qk_ov import ov_singular_directions

    at = open_view(lang, "svd", layer=1, head=3)
    at.number_input(key="c_directions").set_value(2).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    svd = ov_singular_directions(model, 1, 3, n_directions=2, k=8)
    bars = specs(at)[t("circuits.svd_title", lang, layer=1, head=3)]["data"][0]
    np.testing.assert_allclose(plotly_array(bars["y"]), svd.S.numpy(), rtol=1e-6)
    table = at.dataframe[0].value
    assert len(table) == 2
    np.testing.assert_allclose(table[t("circuits.singular_value", lang)].to_numpy(), svd.S[:2].numpy(), rtol=1e-6)
    for column, labels in (("circuits.reads", svd.read_top_labels), ("circuits.writes", svd.write_top_labels),
                           ("circuits.reads_opposite", svd.read_bottom_labels),
                           ("circuits.writes_opposite", svd.write_bottom_labels)):
        assert list(table[t(column, lang)]) == [", ".join(f"'{w}'" for w in row) for row in labels]
    from ui.snippets import svd_snippet

    assert svd_snippet("induction-2l", 1, 3, 2, 8).strip() in [c.value.strip() for c in at.code]


def test_positional_and_svd_views_match_circuits(model, native):
    from circuits.qk_ov import ov_singular_directions, positional_qk_circuit
    from ui.circuits_view import positional_kind, positional_view, svd_view

    assert positional_kind(model) == "table"
    assert {p: positional_kind(models.load_pretrained(str(f))) for p, f in native.items()} == {
        "rotary": "rotary", "alibi": "alibi", "none": "none"}
    view = positional_view(model, 1, 0, n_positions=500)  # at most n_ctx positions
    assert view.values.shape == (64, 64) and view.positions == list(range(64))
    full = positional_qk_circuit(model, 1, head=0, query_positions=range(64), scaled=True).values.numpy()
    np.testing.assert_allclose(np.tril(view.values), np.tril(full), rtol=1e-6)
    assert positional_view(models.load_pretrained(str(native["none"])), 0, 0).values is None
    s = svd_view(model, 0, 1, n_directions=4, k=5)
    ref = ov_singular_directions(model, 0, 1, n_directions=4, k=5)
    assert s.write_top == ref.write_top_labels and len(s.read_top) == 4 and len(s.read_top[0]) == 5
    with pytest.raises(PromptError):
        svd_view(model, 0, 9)
    with pytest.raises(PromptError):
        positional_view(model, 2, 0)


# ----------------------------------------------------------------------------- encoder-decoder and encoder models
SOURCE, TARGET = "el gato negro come el pescado", "the black cat eats the fish"


@pytest.fixture(scope="module")
def translator():
    return models.load_pretrained("translator-es-en")


def open_translator(lang="en") -> AppTest:
    return open_page(lang, "translator-es-en")


@pytest.mark.parametrize("lang", ["es", "en"])
def test_cross_attention_circuits_of_the_translator(lang, translator):
    """Cross-attention heads: QK rows are target words, columns source words; the OV circuit maps
    the source words a head attends to onto the target words' logits; copying and composition
    scores are those of the cross-attention heads."""
    from ui.circuits_view import composition_view, copying_view

    at = open_translator(lang)
    assert at.radio(key="c_kind").options == [t(f"attention.kind.{k}", lang) for k in ("encoder", "decoder", "cross")]
    at.radio(key="c_kind").set_value("cross").run()
    at.selectbox(key="c_layer").set_value(1).run()
    at.text_input(key="c_tokens").input(SOURCE).run()
    at.text_input(key="c_target_tokens").input(TARGET).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    view = head_circuits_view(translator, 1, 0, SOURCE, "cross", TARGET)
    assert view.query_labels[:3] == ["the", "black", "cat"] and view.key_labels[:3] == ["el", "gato", "negro"]
    suffix = " · " + t("attention.kind.cross", lang)
    charts = specs(at)
    qk = charts[t("circuits.qk_title", lang, layer=1, head=0) + suffix]
    np.testing.assert_allclose(plotly_array(qk["data"][0]["z"]), view.qk, atol=1e-5)
    assert list(qk["data"][0]["y"])[:2] == ["the", "black"] and list(qk["data"][0]["x"])[:2] == ["el", "gato"]
    ov = charts[t("circuits.ov_title", lang, layer=1, head=0) + suffix]
    np.testing.assert_allclose(plotly_array(ov["data"][0]["z"]), view.ov, atol=1e-5)
    copying = charts[t("circuits.copying_title", lang) + suffix]
    np.testing.assert_allclose(plotly_array(copying["data"][0]["z"]), copying_view(translator, "cross"), atol=1e-6)
    comp = composition_view(translator, "K", "cross")
    shown = charts[t("circuits.composition_title", lang, mode="K") + suffix]
    np.testing.assert_allclose(plotly_array(shown["data"][0]["z"]), comp.matrix - comp.baseline_mean, atol=1e-6)
    assert comp.writer_labels[0].startswith("E") and comp.reader_labels[0].startswith("C")  # encoder -> cross


def test_every_attention_of_the_translator_and_its_positions(translator):
    at = open_translator()
    for kind in ("encoder", "decoder", "cross"):
        at.radio(key="c_kind").set_value(kind).run()
        for view in ("tokens", "positions", "svd"):
            at.radio(key="c_view").set_value(view).run()
            assert not at.exception and not at.error, (kind, view, [e.value for e in at.error])
    at.radio(key="c_kind").set_value("decoder").run()
    at.radio(key="c_view").set_value("positions").run()
    from ui.circuits_view import positional_view

    pos = positional_view(translator, 0, 0, 32, "", "decoder")
    assert pos.kind == "table" and np.isnan(pos.values[0, 1]) and not np.isnan(pos.values[1, 0])  # causal
    enc = positional_view(translator, 0, 0, 32, "", "encoder")
    assert not np.isnan(enc.values).any()  # the encoder sees every position


def test_an_encoder_without_a_head_shows_the_qk_side(tmp_path):
    """No unembedding (a BERT encoder without its MLM head, like MiniLM): QK circuits, positions
    and composition work; the OV side says why it is missing; nothing is an error."""
    from tests.hf_reference import save_random_hf_model

    folder = save_random_hf_model("bert_nohead", tmp_path / "bert")
    encoder = models.load_pretrained(str(folder))
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = "en"
    at.run()
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(folder)).run()
    at.switch_page("pages/circuits.py").run()
    at.text_input(key="c_tokens").input("hello world").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    view = head_circuits_view(encoder, 0, 0, "hello world")
    assert view.ov is None
    (qk,) = [s for title, s in specs(at).items() if title.startswith(t("circuits.qk_title", "en", layer=0, head=0))]
    np.testing.assert_allclose(plotly_array(qk["data"][0]["z"]), view.qk, atol=1e-5)
    assert t("circuits.no_ov", "en", name=str(folder)) in [i.value for i in at.info]
    for v in ("positions", "svd"):
        at.radio(key="c_view").set_value(v).run()
        assert not at.exception and not at.error
