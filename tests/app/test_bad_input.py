"""The bad-input catalogue of a classroom server, through the real pages (AppTest).

Each bad input must give a clear message in the page (an st.error / st.warning / st.info whose
text is the translated message), never an exception; the page keeps its widgets, and the next
valid input works in the same session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import settings as settings_mod
from ui import state
from ui.i18n import t

APP = Path(__file__).resolve().parents[2] / "app.py"
GOOD = "the cat sat on the mat the cat sat on the"


def open_page(page: str, lang: str = "en", **state_values) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.LANG_KEY] = lang
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    for key, value in state_values.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def messages(at: AppTest) -> list[str]:
    return [m.value for kind in ("error", "warning", "info") for m in at.get(kind)]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in " ".join(messages(at))


# (prompt, i18n key of the expected message, its placeholders); None = the prompt runs
CATALOGUE = [
    ("", "error.empty_prompt", {}),
    ("   \n\t  ", "error.empty_prompt", {}),
    ("the " * 80, "error.prompt_too_long", {"n": 81, "n_ctx": 64}),
    ("x" * 40_000, "error.text_too_long", {"n": 40_000, "limit": 1024 * 32}),
    ("the cat 猫 кошка قطة 😀 sat", "warning.unknown_words", {"words": "«猫», «кошка», «قطة», «😀», «sat»"}),
    ("the\x00cat\x07 sat\u200b on", None, {}),  # control characters: runs (unknown pieces are warned)
    ("zzz qqq", "warning.unknown_words", {"words": "«zzz», «qqq»"}),  # only unknown words: runs
]


@pytest.mark.parametrize("lang", ["es", "en"])
def test_attention_prompt_catalogue(lang: str) -> None:
    at = open_page("attention", lang)
    for prompt, key, details in CATALOGUE:
        at.text_area(key=state.PROMPT_KEY).input(prompt).run()
        assert_clean(at)
        if key is not None:
            assert t(key, lang, **details) in messages(at), (prompt[:40], messages(at))
        if key is None or key.startswith("warning."):
            assert errors(at) == [] and at.get("plotly_chart"), prompt[:40]
        else:
            assert not at.get("plotly_chart")
        # the text the student typed is still there (nothing lost), and the next valid input works
        assert at.text_area(key=state.PROMPT_KEY).value == prompt
        at.text_area(key=state.PROMPT_KEY).input(GOOD).run()
        assert_clean(at)
        assert errors(at) == [] and len(at.get("plotly_chart")) == 1


def test_server_prompt_limit_message_and_recovery(monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_MAX_PROMPT_TOKENS", "6")
    try:
        at = open_page("attention")
        at.text_area(key=state.PROMPT_KEY).input("the cat sat on the mat").run()
        assert t("error.prompt_over_limit", "en", n=7, limit=6) in errors(at)
        at.text_area(key=state.PROMPT_KEY).input("the cat sat").run()
        assert errors(at) == [] and len(at.get("plotly_chart")) == 1
    finally:
        monkeypatch.delenv("WORKBENCH_MAX_PROMPT_TOKENS")
        settings_mod.activate(settings_mod.read_settings())


def test_stale_out_of_range_layer_and_head_are_forgotten() -> None:
    at = open_page("attention", **{state.LAYER_KEY: 99, state.HEAD_KEY: -3})
    assert_clean(at)
    assert errors(at) == []
    assert at.selectbox(key=state.LAYER_KEY).value == 0 and at.selectbox(key=state.HEAD_KEY).value == 0


def test_residual_page_bad_answers_and_prompts() -> None:
    at = open_page("residual")
    at.text_input(key="res_answer").input("cat sat").run()  # two tokens
    assert_clean(at)
    assert t("error.not_one_token", "en", field="answer", text="cat sat") in errors(at)
    at.text_input(key="res_answer").input("").run()
    assert_clean(at)
    assert errors(at)
    at.text_area(key="res_prompt").input(" ").run()
    assert_clean(at)
    assert t("error.empty_prompt", "en") in errors(at)
    at.text_area(key="res_prompt").input(GOOD).run()
    at.text_input(key="res_answer").input("mat").run()
    assert_clean(at)
    assert errors(at) == [] and at.get("plotly_chart")


def test_patching_clean_and_corrupted_of_different_lengths() -> None:
    at = open_page("interventions")
    at.text_input(key="p_clean").input("the cat sat on the mat the cat sat on the").run()
    at.text_input(key="p_corrupted").input("the dog sat on the mat").run()
    at.text_input(key="p_answer").input("mat").run()
    at.text_input(key="p_wrong").input("cat").run()
    at.button(key="p_run").click().run()
    assert_clean(at)
    assert t("error.length_mismatch", "en", n=12, m=7) in errors(at)
    at.text_input(key="p_corrupted").input("the dog sat on the mat the dog sat on the").run()
    at.button(key="p_run").click().run()
    assert_clean(at)
    assert errors(at) == [] and at.get("plotly_chart")


def test_sweep_over_the_server_limit(monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_MAX_SWEEP_RUNS", "5")
    try:
        at = open_page("interventions")
        at.text_input(key="p_clean").input("the cat sat on the mat the cat sat on the").run()
        at.text_input(key="p_corrupted").input("the dog sat on the mat the dog sat on the").run()
        at.text_input(key="p_answer").input("mat").run()
        at.text_input(key="p_wrong").input("cat").run()
        at.selectbox(key="p_sweep").set_value("head_out").run()
        at.button(key="p_run").click().run()
        assert_clean(at)
        assert t("error.sweep_too_large", "en", n=8, limit=5) in errors(at)
    finally:
        monkeypatch.delenv("WORKBENCH_MAX_SWEEP_RUNS")
        settings_mod.activate(settings_mod.read_settings())


def test_empty_ablation_set_is_not_an_error() -> None:
    at = open_page("interventions", abl_heads=[])
    assert_clean(at)
    assert errors(at) == []


def test_folder_outside_the_allowed_dirs_is_refused(tmp_path: Path, tiny_gpt2_dir: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for lang in ("es", "en"):
        at = AppTest.from_file(str(APP), default_timeout=90)
        at.secrets["model_dirs"] = [str(allowed)]
        at.session_state[state.LANG_KEY] = lang
        at.run()
        at.text_input(key=state.MODEL_FOLDER_KEY).input(str(tiny_gpt2_dir)).run()
        assert_clean(at)
        refused = t("error.path_refused", lang, path=str(tiny_gpt2_dir), dirs=str(allowed.resolve()))
        assert refused in errors(at), errors(at)
        # a path that does not exist outside is refused the same way (nothing to probe)
        at.text_input(key=state.MODEL_FOLDER_KEY).input("/etc/no/such/thing").run()
        assert t("error.path_refused", lang, path="/etc/no/such/thing", dirs=str(allowed.resolve())) in errors(at)
        # the shipped models stay available by name
        at.text_input(key=state.MODEL_FOLDER_KEY).input("").run()
        assert_clean(at)
        assert errors(at) == [] and at.get("plotly_chart")
    settings_mod.activate(settings_mod.read_settings())
