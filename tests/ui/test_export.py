"""Exports of the attention figure: PNG, SVG, offline HTML, CSV, and the command line."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import models
from ui.export import FORMATS, export, main, to_csv, to_html, to_png, to_svg
from ui.figures import attention_heatmap
from ui.patterns import compute_attention_patterns

needs_chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="kaleido needs /usr/bin/chromium")
PROMPT = "gato azul tren queso gato azul tren queso"


@pytest.fixture(scope="module")
def figure():
    model = models.load_pretrained("induction-2l")
    patterns = compute_attention_patterns(model, PROMPT)
    fig = attention_heatmap(patterns.head(1, 3), ("<bos>",) + patterns.str_tokens[1:], title="Capa 1, cabeza 3")
    return fig, patterns.head(1, 3), ["<bos>"] + list(patterns.str_tokens[1:])


@needs_chromium
def test_png_and_svg(figure):
    from PIL import Image

    fig, _, _ = figure
    png = to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    assert image.size[0] >= 700 and image.size[1] >= 450  # scale 2 of the default size
    assert len(set(image.convert("L").getdata())) > 10  # not blank
    svg = to_svg(fig).decode("utf-8")
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag.endswith("svg")
    texts = " ".join(t for t in root.itertext())
    assert "Capa 1, cabeza 3" in texts and "<bos>" in texts  # special tokens survive (escaped for Plotly)


def test_html_is_standalone_and_offline(figure):
    fig, pattern, tokens = figure
    html = to_html(fig)
    assert not re.search(r"<script[^>]+src=", html)  # no external script: plotly.js is in the page
    assert not re.search(r"<link[^>]+href=\"https?://", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js is inlined
    spec = json.loads(fig.to_json())
    assert spec["layout"]["title"]["text"] in html


def test_csv_holds_the_pattern_with_plain_labels(figure):
    fig, pattern, tokens = figure
    rows = list(csv.reader(io.StringIO(to_csv(fig))))
    header, body = rows[0], rows[1:]
    assert header[1:] == [f"{i}: {t}" for i, t in enumerate(tokens)]  # "<bos>", not "&lt;bos&gt;"
    assert [r[0] for r in body] == header[1:]
    values = np.array([[float(v) for v in r[1:]] for r in body])
    np.testing.assert_allclose(values, pattern, atol=1e-5)
    assert export(fig, "csv") == to_csv(fig).encode()


@needs_chromium
def test_command_line_one_head_and_all_heads(tmp_path):
    out = tmp_path / "head.svg"
    assert main(["--model", "induction-2l", "--prompt", PROMPT, "--layer", "1", "--head", "3",
                 "--format", "svg", "-o", str(out), "--lang", "en"]) == 0
    assert "Attention pattern · layer 1, head 3" in " ".join(ET.fromstring(out.read_text()).itertext())
    slides = tmp_path / "slides"
    assert main(["--model", "induction-2l", "--prompt", PROMPT, "--all-heads", "--format", "csv", "-o", str(slides)]) == 0
    assert sorted(p.name for p in slides.iterdir()) == sorted(f"self_L{l}H{h}.csv" for l in range(2) for h in range(4))


def test_command_line_errors(tmp_path, capsys):
    assert main(["--model", "no-such-model", "--prompt", "x", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["--model", "induction-2l", "--prompt", "gato", "--layer", "7", "-o", str(tmp_path / "x.png")]) == 2
    assert "layer must be 0..1" in capsys.readouterr().err
    assert main(["--model", "induction-2l", "--prompt", "gato", "--kind", "cross", "-o", str(tmp_path / "x.png")]) == 2
    assert set(FORMATS) == {"png", "svg", "html", "csv"}


def test_csv_of_a_grid_holds_every_panel():
    """Several heatmaps (all heads of a layer): one long table with every head's weights."""
    from ui.figures import head_grid

    model = models.load_pretrained("induction-2l")
    patterns = compute_attention_patterns(model, PROMPT)
    tokens = ["<bos>"] + list(patterns.str_tokens[1:])
    fig = head_grid(patterns.patterns[1], tokens, titles=[f"H{h}" for h in range(4)])
    rows = list(csv.reader(io.StringIO(to_csv(fig))))
    assert rows[0] == ["series", "y", "x", "value"]
    body = rows[1:]
    n = len(tokens)
    assert len(body) == 4 * n * n
    for h in range(4):
        cells = [r for r in body if r[0] == f"H{h}"]
        values = np.array([float(r[3]) for r in cells]).reshape(n, n)
        np.testing.assert_allclose(values, patterns.head(1, h), atol=1e-5)
        assert cells[1][1:3] == ["0: <bos>", "1: gato"]  # (query, key) labels in plain text


def test_csv_of_two_bar_series():
    from ui.figures import prediction_bars

    fig = prediction_bars((["a", "<b>"], [0.6, 0.3]), (["c", "a"], [0.5, 0.2]), clean_label="normal",
                          ablated_label="ablated")
    rows = list(csv.reader(io.StringIO(to_csv(fig))))
    assert rows[0] == ["series", "x", "y"]
    assert rows[1:] == [["normal", "0.6", "'a'"], ["normal", "0.3", "'<b>'"], ["ablated", "0.5", "'c'"],
                        ["ablated", "0.2", "'a'"]]


def test_command_line_grid_views(tmp_path, capsys):
    """--view layer / all: the app's grids in one file (CSV: every head's weights)."""
    model = models.load_pretrained("induction-2l")
    patterns = compute_attention_patterns(model, PROMPT)
    out = tmp_path / "all.csv"
    assert main(["--model", "induction-2l", "--prompt", PROMPT, "--view", "all", "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))[1:]
    assert sorted({r[0] for r in rows}) == sorted(f"L{l}H{h}" for l in range(2) for h in range(4))
    cells = np.array([float(r[3]) for r in rows if r[0] == "L1H3"])
    np.testing.assert_allclose(cells, patterns.head(1, 3).ravel(), atol=1e-5)
    out = tmp_path / "layer.html"
    assert main(["--model", "induction-2l", "--prompt", PROMPT, "--view", "layer", "--layer", "1", "--format", "html",
                 "--lang", "en", "-o", str(out)]) == 0
    assert "Attention patterns of every head · layer 1" in out.read_text()
    assert main(["--model", "induction-2l", "--prompt", "   ", "-o", str(tmp_path / "x.png")]) == 2
    assert "El texto de entrada está vacío." in capsys.readouterr().err  # the app's own message, not a code


def test_without_a_browser_png_and_svg_say_why(monkeypatch):
    """No Chromium for kaleido: the PNG/SVG buttons are disabled with the fix in their help and a
    caption; HTML and CSV stay downloadable; nothing fails."""
    from pathlib import Path as _Path

    from streamlit.testing.v1 import AppTest

    from ui import export as export_module
    from ui import state
    from ui.i18n import t

    monkeypatch.setenv("BROWSER_PATH", "/no/such/chrome")
    assert not export_module.image_export_available()
    at = AppTest.from_file(str(_Path(__file__).resolve().parents[2] / "app.py"), default_timeout=60)
    at.session_state[state.LANG_KEY] = "en"
    at.session_state[state.MODEL_NAME_KEY] = "induction-2l"
    at.run()
    assert not at.exception and not at.error
    disabled = [b for b in at.button if b.label in (t("export.png", "en"), t("export.svg", "en"))]
    assert len(disabled) == 2 and all(b.disabled for b in disabled)
    assert t("export.no_browser", "en") in [c.value for c in at.caption]
    monkeypatch.setenv("BROWSER_PATH", "/usr/bin/chromium")
    assert export_module.image_export_available() == _Path("/usr/bin/chromium").exists()


def test_clickable_cells_are_not_exported_as_data():
    """The detector heatmap's invisible click targets (one marker per cell) stay out of the CSV."""
    from ui.figures import CLICK_LAYER, score_heatmap

    values = np.array([[0.1, 0.9], [0.5, 0.25]])
    clickable = score_heatmap(values, clickable=True)
    assert [tr.name for tr in clickable.data][1:] == [CLICK_LAYER] and len(clickable.data[1].x) == 4
    assert (list(clickable.data[1].x), list(clickable.data[1].y)) == (["0", "1", "0", "1"], ["0", "0", "1", "1"])
    assert to_csv(clickable) == to_csv(score_heatmap(values))
    rows = list(csv.reader(io.StringIO(to_csv(clickable))))
    assert rows == [["", "0", "1"], ["0", "0.1", "0.9"], ["1", "0.5", "0.25"]]
