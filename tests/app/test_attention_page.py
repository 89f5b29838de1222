"""The attention page, driven headlessly with Streamlit's AppTest.

Uses the real ``models`` package on the tiny random checkpoint folder from
``tests/conftest.py`` (``tiny_gpt2_dir``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import models
from ui import state
from ui.figures import token_labels
from ui.i18n import t, translator
from ui.sidebar import summary_text
from ui.patterns import compute_attention_patterns

APP = Path(__file__).resolve().parents[2] / "app.py"
PROMPT = "The cat sat on the mat. The cat sat"
LANGS = ["es", "en"]


def new_app(lang: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[state.LANG_KEY] = lang
    return at


def open_folder(at: AppTest, folder: Path | str, prompt: str | None = PROMPT) -> AppTest:
    at.run()
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(folder)).run()
    if prompt is not None:
        at.text_area(key=state.PROMPT_KEY).input(prompt).run()
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def plotly_array(value) -> np.ndarray:
    """A figure-JSON array: plain lists, or Plotly's base64 typed-array dicts."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return flat.reshape(shape) if shape else flat
    return np.asarray(value, dtype=float)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def expected(tiny_gpt2_dir: Path):
    """Patterns and tokens of PROMPT computed directly, without the app."""
    model = models.load_pretrained(str(tiny_gpt2_dir))
    return compute_attention_patterns(model, PROMPT)


@pytest.mark.parametrize("lang", LANGS)
def test_heatmap_of_chosen_head(lang: str, tiny_gpt2_dir: Path, expected) -> None:
    at = open_folder(new_app(lang), tiny_gpt2_dir)
    assert_no_exception(at)
    assert errors(at) == []
    assert at.title[0].value == t("attention.title", lang)
    assert at.text_area(key=state.PROMPT_KEY).label == t("attention.prompt", lang)
    assert at.selectbox(key=state.LAYER_KEY).label == t("attention.layer", lang)
    assert at.selectbox(key=state.HEAD_KEY).label == t("attention.head", lang)
    assert at.selectbox(key=state.LAYER_KEY).options == ["0", "1"]
    assert at.selectbox(key=state.HEAD_KEY).options == ["0", "1", "2", "3"]

    (spec,) = charts(at)
    trace = spec["data"][0]
    labels = token_labels(expected.str_tokens)
    assert trace["type"] == "heatmap"
    assert trace["x"] == labels and trace["y"] == labels  # keys on x, queries on y
    assert len(set(labels)) == len(labels)  # "The cat" repeats, labels must not
    np.testing.assert_allclose(plotly_array(trace["z"]), expected.head(0, 0), atol=1e-6)
    assert t("figure.title", lang, layer=0, head=0) == spec["layout"]["title"]["text"]
    for word in ("figure.query", "figure.key", "figure.weight"):
        assert t(word, lang) in trace["hovertemplate"]

    at.selectbox(key=state.LAYER_KEY).set_value(1).run()
    at.selectbox(key=state.HEAD_KEY).set_value(3).run()
    assert_no_exception(at)
    (spec,) = charts(at)
    assert spec["layout"]["title"]["text"] == t("figure.title", lang, layer=1, head=3)
    np.testing.assert_allclose(plotly_array(spec["data"][0]["z"]), expected.head(1, 3), atol=1e-6)


@pytest.mark.parametrize("lang", LANGS)
def test_empty_prompt_shows_error(lang: str, tiny_gpt2_dir: Path) -> None:
    at = open_folder(new_app(lang), tiny_gpt2_dir, prompt="   ")
    assert_no_exception(at)
    assert errors(at) == [t("error.empty_prompt", lang)]
    assert charts(at) == []
    # The rest of the page keeps working: fix the prompt and the chart appears.
    at.text_area(key=state.PROMPT_KEY).input("hello there").run()
    assert_no_exception(at)
    assert errors(at) == []
    assert len(charts(at)) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_missing_folder_shows_error(lang: str, tiny_gpt2_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    at = open_folder(new_app(lang), missing)
    assert_no_exception(at)
    assert errors(at) == [t("error.folder_missing", lang, path=str(missing))]
    assert charts(at) == []
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(tiny_gpt2_dir)).run()
    assert_no_exception(at)
    assert errors(at) == []
    assert len(charts(at)) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_file_instead_of_folder_shows_error(lang: str, tiny_gpt2_dir: Path) -> None:
    config_file = tiny_gpt2_dir / "config.json"
    at = open_folder(new_app(lang), config_file)
    assert_no_exception(at)
    assert errors(at) == [t("error.not_a_folder", lang, path=str(config_file))]


@pytest.mark.parametrize("lang", LANGS)
def test_folder_without_checkpoint_shows_load_error(lang: str, tmp_path: Path) -> None:
    at = open_folder(new_app(lang), tmp_path)
    assert_no_exception(at)
    (message,) = errors(at)
    prefix = t("error.model_load", lang, name=str(tmp_path.resolve()), detail="").split(":")[0]
    assert message.startswith(prefix), message
    assert "Traceback" not in message


@pytest.mark.parametrize("lang", LANGS)
def test_no_model_selected_shows_error(lang: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "list_models", lambda: [])
    state.shipped_models.clear()
    try:
        at = new_app(lang).run()
        assert_no_exception(at)
        assert errors(at) == [t("error.no_model", lang)]
        assert t("sidebar.no_models", lang) in [i.value for i in at.info]
    finally:
        state.shipped_models.clear()


def test_switching_language_relabels_everything(tiny_gpt2_dir: Path) -> None:
    at = open_folder(new_app("es"), tiny_gpt2_dir)
    assert at.radio(key=state.LANG_KEY).label == t("sidebar.language", "es")
    at.radio(key=state.LANG_KEY).set_value("en").run()
    assert_no_exception(at)
    assert at.radio(key=state.LANG_KEY).label == t("sidebar.language", "en")
    assert at.title[0].value == t("attention.title", "en")
    assert at.text_input(key=state.MODEL_FOLDER_KEY).label == t("sidebar.folder", "en")
    (spec,) = charts(at)
    assert spec["layout"]["title"]["text"] == t("figure.title", "en", layer=0, head=0)
    # Selections survive the language switch.
    assert at.text_input(key=state.MODEL_FOLDER_KEY).value == str(tiny_gpt2_dir)
    assert at.text_area(key=state.PROMPT_KEY).value == PROMPT


def test_changing_layer_or_head_does_not_rerun_model(tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting(model, prompt, **kwargs):
        calls.append(prompt)
        return compute_attention_patterns(model, prompt, **kwargs)

    monkeypatch.setattr(state, "compute_attention_patterns", counting)
    prompt = "a prompt used only by this test, twice: a prompt"
    at = open_folder(new_app("en"), tiny_gpt2_dir, prompt=prompt)
    assert len(charts(at)) == 1
    for layer, head in [(1, 0), (1, 2), (0, 3)]:
        at.selectbox(key=state.LAYER_KEY).set_value(layer).run()
        at.selectbox(key=state.HEAD_KEY).set_value(head).run()
        assert len(charts(at)) == 1
    assert calls == [prompt]
    at.text_area(key=state.PROMPT_KEY).input(prompt + " again").run()
    assert calls == [prompt, prompt + " again"]


def test_no_hooks_left_on_shared_model(tiny_gpt2_dir: Path) -> None:
    at = open_folder(new_app("en"), tiny_gpt2_dir, prompt="hooks must not stay behind")
    assert len(charts(at)) == 1
    model = state._load_model(str(tiny_gpt2_dir.resolve())).model
    leftover = [
        name
        for name, module in model.named_modules()
        if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
    ]
    assert leftover == []


def test_first_listed_model_is_selected_by_default(tiny_gpt2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no folder typed in, the first model of list_models() is shown."""
    fake_infos = [SimpleNamespace(name=n, family="gpt2", summary="", path="") for n in ("first-tiny", "second")]
    real_load = state.load_pretrained

    def load(name, device=None, dtype=None):
        if name == "first-tiny":
            return real_load(str(tiny_gpt2_dir))
        raise models.ModelLoadError(f"unexpected model {name}")

    monkeypatch.setattr(state, "list_models", lambda: fake_infos)
    monkeypatch.setattr(state, "load_pretrained", load)
    state.shipped_models.clear()
    try:
        at = new_app("en").run()
        assert_no_exception(at)
        assert at.selectbox(key=state.MODEL_NAME_KEY).value == "first-tiny"
        assert errors(at) == []
        assert len(charts(at)) == 1
    finally:
        state.shipped_models.clear()
        state._load_model.clear()


def test_shipped_models_render_by_default() -> None:
    """The README's quick start: the app opens on the first shipped model."""
    infos = models.list_models()
    if not infos:
        pytest.skip("no shipped models yet (models.list_models() is empty)")
    state.shipped_models.clear()
    at = new_app("es").run()
    assert_no_exception(at)
    assert at.selectbox(key=state.MODEL_NAME_KEY).value == infos[0].name
    assert errors(at) == []
    assert len(charts(at)) == 1


# ----------------------------------------------------------------- encoder and encoder-decoder models
@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory) -> Path:
    from tests.hf_reference import save_random_hf_model

    return save_random_hf_model("marian", tmp_path_factory.mktemp("marian"))


@pytest.mark.parametrize("lang", LANGS)
def test_encoder_decoder_attention_kinds(lang: str, marian_dir: Path) -> None:
    source = "el gato negro"
    at = open_folder(new_app(lang), marian_dir, prompt=source)
    assert_no_exception(at)
    assert errors(at) == []
    assert at.text_area(key=state.PROMPT_KEY).label == t("attention.source", lang)
    kinds = at.radio(key=state.ATTN_KIND_KEY)
    assert kinds.label == t("attention.kind", lang)
    assert kinds.options == [t(f"attention.kind.{k}", lang) for k in ("encoder", "decoder", "cross")]
    model = models.load_pretrained(str(marian_dir))
    expected = compute_attention_patterns(model, source)
    assert t("attention.generated", lang, text=expected.target_text or "∅") in [i.value for i in at.info]

    for kind in ("encoder", "decoder", "cross"):
        at.radio(key=state.ATTN_KIND_KEY).set_value(kind).run()
        at.selectbox(key=state.LAYER_KEY).set_value(1).run()
        at.selectbox(key=state.HEAD_KEY).set_value(2).run()
        assert_no_exception(at)
        (spec,) = charts(at)
        trace = spec["data"][0]
        chosen = expected[kind]
        assert trace["y"] == token_labels(chosen.query_tokens) and trace["x"] == token_labels(chosen.key_tokens)
        np.testing.assert_allclose(plotly_array(trace["z"]), chosen.head(1, 2), atol=1e-6)
        assert spec["layout"]["title"]["text"] == t(f"figure.title.{kind}", lang, layer=1, head=2)

    # a target typed by the user replaces the model's output; the chosen kind/layer/head stay
    at.text_input(key=state.TARGET_KEY).input("the black cat").run()
    assert_no_exception(at)
    given = compute_attention_patterns(model, source, target="the black cat")
    (spec,) = charts(at)
    assert spec["data"][0]["y"] == token_labels(given["cross"].query_tokens)
    np.testing.assert_allclose(plotly_array(spec["data"][0]["z"]), given["cross"].head(1, 2), atol=1e-6)
    assert t("attention.given_target", lang, text="the black cat") in [i.value for i in at.info]


def test_encoder_model_runs_through_attention_page(tmp_path: Path) -> None:
    from tests.hf_reference import save_random_hf_model

    folder = save_random_hf_model("bert_nohead", tmp_path / "bert")
    at = open_folder(new_app("en"), folder, prompt="the cat sat")
    assert_no_exception(at)
    assert errors(at) == []
    assert state.ATTN_KIND_KEY not in [r.key for r in at.get("radio")]  # one kind of attention: no choice
    (spec,) = charts(at)
    z = plotly_array(spec["data"][0]["z"])
    assert np.all(z[np.triu_indices(z.shape[0], 1)] > 0)  # bidirectional
    assert t("attention.intro_encoder", "en") in [c.value for c in at.caption]


def test_model_picker_shows_family_and_summary() -> None:
    infos = models.list_models()
    if not infos:
        pytest.skip("no listed models")
    state.shipped_models.clear()
    at = new_app("es").run()
    picker = at.selectbox(key=state.MODEL_NAME_KEY)
    family = {"decoder": "decodificador", "encoder": "codificador", "encoder-decoder": "codificador-decodificador"}
    assert picker.options == [f"{i.name} · {family[i.family]}" for i in infos]
    captions = [c.value for c in at.sidebar.caption]
    assert summary_text(translator("es"), infos[0].summary) in captions
    assert infos[0].summary not in captions  # translated: "capas", "cabezas", ...


def test_summary_line_in_both_languages() -> None:
    line = "decoder, 30 layers x 9 heads (3 kv), d_model 576, rotary positions, pre-RMSNorm, SwiGLU, grouped-query"
    assert summary_text(translator("es"), line) == (
        "decodificador, 30 capas x 9 cabezas (3 kv), d_model 576, posiciones rotatorias (RoPE), pre-RMSNorm, "
        "SwiGLU, atención de consultas agrupadas (GQA)")
    assert summary_text(translator("en"), line) == (
        "decoder, 30 layers x 9 heads (3 kv), d_model 576, rotary positions (RoPE), pre-RMSNorm, SwiGLU, "
        "grouped-query attention (GQA)")
    seq2seq = "encoder-decoder, 2+2 layers x 4 heads, d_model 128, sinusoidal positions, post-LayerNorm, ReLU, multi-head"
    assert summary_text(translator("es"), seq2seq).startswith("codificador-decodificador, 2+2 capas x 4 cabezas")
    for info in models.list_models():  # every shipped model's line is recognised
        assert summary_text(translator("es"), info.summary) != info.summary
    assert summary_text(translator("es"), "something else") == "something else"


def test_layer_grid_and_detectors_views(tmp_path: Path) -> None:
    """All heads of a layer in one figure, and the detector heatmap whose picker opens a head."""
    from ui.patterns import detector_scores

    model = models.load_pretrained("induction-2l")
    prompt = "gato azul tren queso gato azul tren queso"
    at = new_app("en")
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.text_area(key=state.PROMPT_KEY).input(prompt).run()
    at.radio(key=state.ATTN_VIEW_KEY).set_value("layer").run()
    at.selectbox(key=state.LAYER_KEY).set_value(1).run()
    assert not at.exception and not at.error
    (spec,) = charts(at)
    expected = compute_attention_patterns(model, prompt)
    assert len(spec["data"]) == model.cfg.n_heads
    for h, trace in enumerate(spec["data"]):
        np.testing.assert_allclose(plotly_array(trace["z"]), expected.head(1, h), atol=1e-6)

    at.radio(key=state.ATTN_VIEW_KEY).set_value("detectors").run()
    at.selectbox(key=state.DETECTOR_KEY).set_value("induction").run()
    assert not at.exception and not at.error
    (spec,) = charts(at)
    scores = detector_scores(model, prompt)["induction"]
    np.testing.assert_allclose(plotly_array(spec["data"][0]["z"]), scores, atol=1e-6)
    best = np.unravel_index(np.argmax(scores), scores.shape)
    assert best[0] == 1  # an induction head, in layer 1
    at.selectbox(key="detector_goto").set_value(f"L{best[0]}H{best[1]}").run()
    assert not at.exception
    assert at.radio(key=state.ATTN_VIEW_KEY).value == "head"
    (spec,) = charts(at)
    assert spec["layout"]["title"]["text"] == t("figure.title", "en", layer=int(best[0]), head=int(best[1]))


def test_all_layers_view_shows_every_head_of_every_layer() -> None:
    """One panel per (layer, head), in order, each equal to that head's pattern; the snippet
    shown under it is the one of the all-layers view."""
    model = models.load_pretrained("induction-2l")
    prompt = "gato azul tren queso gato azul tren queso"
    at = new_app("es")
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    at.text_area(key=state.PROMPT_KEY).input(prompt).run()
    at.radio(key=state.ATTN_VIEW_KEY).set_value("all").run()
    assert_no_exception(at)
    assert not at.error
    (spec,) = charts(at)
    expected = compute_attention_patterns(model, prompt)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    assert [trace["name"] for trace in spec["data"]] == [f"L{l}H{h}" for l in range(L) for h in range(H)]
    for i, trace in enumerate(spec["data"]):
        np.testing.assert_allclose(plotly_array(trace["z"]), expected.head(i // H, i % H), atol=1e-6)
    assert spec["layout"]["title"]["text"] == t("figure.all_title", "es", first=0, last=L - 1)
    assert any("torch.stack" in c.value for c in at.code)


def test_all_layers_view_of_cross_attention() -> None:
    model = models.load_pretrained("translator-es-en")
    source = "el gato negro come el pescado"
    at = new_app("en")
    at.session_state[state.MODEL_NAME_KEY] = "translator-es-en"
    at.run()
    at.text_area(key=state.PROMPT_KEY).input(source).run()
    at.radio(key=state.ATTN_KIND_KEY).set_value("cross").run()
    at.radio(key=state.ATTN_VIEW_KEY).set_value("all").run()
    assert_no_exception(at)
    assert not at.error
    (spec,) = charts(at)
    cross = compute_attention_patterns(model, source)["cross"]
    assert len(spec["data"]) == cross.n_layers * cross.n_heads
    last = spec["data"][-1]
    np.testing.assert_allclose(plotly_array(last["z"]), cross.head(cross.n_layers - 1, cross.n_heads - 1), atol=1e-6)


def test_all_layers_view_of_a_deep_model_shows_a_range(tmp_path: Path) -> None:
    """40 layers x 4 heads is more than the page draws at once: a layer range picks which."""
    from tests.hf_reference import save_random_hf_model

    folder = save_random_hf_model("llama", tmp_path / "deep", num_hidden_layers=40)
    at = open_folder(new_app("en"), folder)
    at.radio(key=state.ATTN_VIEW_KEY).set_value("all").run()
    assert_no_exception(at)
    (spec,) = charts(at)
    assert len(spec["data"]) == 36 * 4 and spec["data"][-1]["name"] == "L35H3"
    at.select_slider(key=state.ATTN_LAYERS_KEY).set_range(30, 39).run()
    assert_no_exception(at)
    (spec,) = charts(at)
    assert [trace["name"] for trace in spec["data"]][:1] == ["L30H0"] and len(spec["data"]) == 40
    at.select_slider(key=state.ATTN_LAYERS_KEY).set_range(0, 39).run()  # too many: clipped, with a message
    assert_no_exception(at)
    assert len(charts(at)[0]["data"]) == 36 * 4 and at.info


def test_demo_texts_follow_the_model_and_typed_text_stays(tiny_gpt2_dir: Path) -> None:
    """A shipped model opens with its own demo text; another model brings its own default while
    the box still holds the untouched default; a text the user typed is never replaced."""
    from ui.prompts import DEMO_TEXTS

    at = new_app("es")
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    assert at.text_area(key=state.PROMPT_KEY).value == DEMO_TEXTS["induction-2l"]["prompt"]
    assert not at.warning  # every word of the demo text is known to the model
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(tiny_gpt2_dir)).run()
    assert at.text_area(key=state.PROMPT_KEY).value == t("attention.default_prompt", "es")
    at.text_input(key=state.MODEL_FOLDER_KEY).input("").run()
    assert at.text_area(key=state.PROMPT_KEY).value == DEMO_TEXTS["induction-2l"]["prompt"]
    at.text_area(key=state.PROMPT_KEY).input("perro gato perro gato").run()
    at.text_input(key=state.MODEL_FOLDER_KEY).input(str(tiny_gpt2_dir)).run()
    assert at.text_area(key=state.PROMPT_KEY).value == "perro gato perro gato"
    assert_no_exception(at)


@pytest.mark.parametrize("name", ["induction-2l", "translator-es-en"])
def test_demo_texts_use_words_the_model_knows(name: str) -> None:
    from ui.prompts import DEMO_TEXTS, unknown_words

    model = models.load_pretrained(name)
    for key, text in DEMO_TEXTS[name].items():
        assert unknown_words(model, text) == [], (key, text)
        if key in ("p_answer", "p_wrong", "res_answer", "res_wrong"):
            model.to_single_token(text)  # one token, as the pages require


def test_induction_demo_shows_induction() -> None:
    """The demo pair of the patching tab really contrasts: the clean text predicts its answer,
    the corrupted one its wrong answer (the first copy decides what the induction heads copy)."""
    from ui.interventions import patching_sweep
    from ui.prompts import DEMO_TEXTS

    demo = DEMO_TEXTS["induction-2l"]
    model = models.load_pretrained("induction-2l")
    sweep = patching_sweep(model, demo["p_clean"], demo["p_corrupted"], demo["p_answer"], demo["p_wrong"], "head_out")
    assert sweep.clean > 2 and sweep.corrupted < -2
    for key in ("abl_prompt", "res_prompt"):
        logits = model(model.to_tokens(demo[key]))[0, -1]
        assert int(logits.argmax()) == model.to_single_token(demo["res_answer"])


def test_the_layer_range_shrinks_with_the_text(tmp_path: Path) -> None:
    """A long text on a deep model: fewer layers fit in the all-layers figure (at most
    MAX_GRID_CELLS weights), and the page says how many it shows."""
    from tests.hf_reference import save_random_hf_model

    folder = save_random_hf_model("llama", tmp_path / "deep", num_hidden_layers=40)
    model = models.load_pretrained(str(folder))
    prompt = ("the cat sat on the mat and " * 10)[:176]  # about 0.7 tokens a character here
    n = len(model.to_str_tokens(prompt))
    assert 118 <= n <= model.cfg.n_ctx
    at = open_folder(new_app("en"), folder, prompt)
    at.radio(key=state.ATTN_VIEW_KEY).set_value("all").run()
    assert_no_exception(at)
    per_view = min(144, 2_000_000 // (n * n)) // 4
    assert per_view < 36  # shorter than for a short text
    (spec,) = charts(at)
    assert len(spec["data"]) == per_view * 4
    at.select_slider(key=state.ATTN_LAYERS_KEY).set_range(0, 39).run()
    assert at.info and len(charts(at)[0]["data"]) == per_view * 4


def test_grid_limit_message() -> None:
    """The page's own check on a pattern set that is too large: a message, no figure."""
    from streamlit.testing.v1 import AppTest as _AppTest

    def script():
        from pathlib import Path
        from types import SimpleNamespace

        import streamlit as st

        root = Path.cwd()
        code = (root / "pages" / "attention.py").read_text().split("\ndef render() -> None:")[0]
        namespace: dict = {}
        exec(compile(code.replace("leave_legacy_multipage_mode()", "pass"), "attention_head", "exec"), namespace)
        chosen = SimpleNamespace(query_tokens=["t"] * 1000, key_tokens=["t"] * 1000)
        from ui.i18n import translator

        st.session_state["fits"] = [namespace["grid_fits"](translator("en"), chosen, 1),
                                    namespace["grid_fits"](translator("en"), chosen, 3)]

    at = _AppTest.from_function(script).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["fits"] == [True, False]
    assert [i.value for i in at.info] == [t("attention.grid_too_big", "en", n=1000, heads=3)]
