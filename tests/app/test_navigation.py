"""One navigation mechanism: st.navigation in app.py over the scripts of pages/.

Streamlit's legacy pages/ mode runs the first script run of a server process (and every
AppTest run); ui/navigation.py leaves it at once. These checks keep the two conditions that
make that work: every page script leaves the mode first, and each page's url_path is its file
stem (the name the legacy mode registers it under). The real-browser test covers the first
interaction of a fresh server.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui import state
from ui.i18n import t

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "pages").glob("*.py"))


def test_every_page_leaves_the_legacy_mode_before_drawing() -> None:
    assert PAGES
    for path in PAGES:
        tree = ast.parse(path.read_text())
        calls = [node for node in tree.body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]
        assert calls, path
        first = calls[0].value.func
        assert isinstance(first, ast.Name) and first.id == "leave_legacy_multipage_mode", path


def test_url_paths_are_file_stems_and_every_page_is_registered() -> None:
    source = (ROOT / "app.py").read_text()
    pairs = re.findall(r'st\.Page\(\s*"pages/(\w+)\.py".*?url_path="(\w+)"', source, flags=re.S)
    assert sorted(stem for stem, _ in pairs) == sorted(p.stem for p in PAGES)
    for stem, url in pairs:
        assert stem == url


def test_a_widget_change_on_every_page_keeps_the_sidebar() -> None:
    for path in PAGES:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
        at.run()
        at.switch_page(f"pages/{path.name}").run()
        at.radio(key=state.LANG_KEY).set_value("en").run()  # a sidebar widget, then a rerun
        assert not at.exception, (path.name, [e.value for e in at.exception])
        assert at.sidebar.text_input(key=state.MODEL_FOLDER_KEY) is not None
        assert at.title[0].value == t(f"{path.stem}.title", "en"), path.name  # same page, new language


def test_a_link_can_choose_the_language() -> None:
    """``?lang=en`` opens a new session in English; an unknown value is ignored (Spanish); the
    sidebar's choice wins afterwards."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params["lang"] = "en"
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    assert not at.exception and at.title[0].value == t("attention.title", "en")
    at.radio(key=state.LANG_KEY).set_value("es").run()
    assert at.title[0].value == t("attention.title", "es")
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    other.query_params["lang"] = "xx"
    other.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    other.run()
    assert not other.exception and other.title[0].value == t("attention.title", "es")
