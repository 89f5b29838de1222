"""ui.figures: pure Plotly figure builders."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import plotly.graph_objects as go
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ui.figures import attention_heatmap, display_token, token_labels

TOKENS = ["<bos>", "The", " cat", " sat", ".", " The", " cat"]


def causal_pattern(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scores = np.where(np.tril(np.ones((n, n), bool)), rng.normal(size=(n, n)), -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


@given(st.lists(st.text(max_size=4), max_size=30))
def test_token_labels_are_unique_and_keep_order(tokens: list[str]) -> None:
    labels = token_labels(tokens)
    assert len(labels) == len(tokens)
    assert len(set(labels)) == len(labels)
    for i, (label, tok) in enumerate(zip(labels, tokens)):
        assert label == f"{i}: {display_token(tok)}"
        assert "\n" not in label


def test_display_token_makes_whitespace_visible() -> None:
    assert display_token("a\nb\tc\r") == "a\\nb\\tc\\r"
    assert display_token(" the") == " the"


def test_heatmap_axes_values_and_hover() -> None:
    pattern = causal_pattern(len(TOKENS))
    fig = attention_heatmap(pattern, TOKENS, title="T", query_label="Q", key_label="K", weight_label="W")
    assert isinstance(fig, go.Figure)
    (trace,) = fig.data
    assert trace.type == "heatmap"
    labels = token_labels(TOKENS)
    assert list(trace.x) == labels  # keys on x
    assert list(trace.y) == labels  # queries on y
    np.testing.assert_allclose(np.asarray(trace.z), pattern)
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)
    assert fig.layout.yaxis.autorange == "reversed"  # first query token on top
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert fig.layout.xaxis.title.text == "K" and fig.layout.yaxis.title.text == "Q"
    assert fig.layout.title.text == "T"
    # hover: query token, key token, weight
    assert "Q: %{customdata[0]}" in trace.hovertemplate
    assert "K: %{customdata[1]}" in trace.hovertemplate
    assert "W: %{z" in trace.hovertemplate
    customdata = np.asarray(trace.customdata)
    assert customdata.shape == (len(TOKENS), len(TOKENS), 2)
    assert tuple(customdata[5, 2]) == ("5:  The", "2:  cat")


def test_heatmap_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        attention_heatmap(np.zeros((3, 3)), ["a", "b"])


def test_figure_modules_do_not_import_streamlit() -> None:
    code = "import sys, ui.figures, ui.patterns, ui.i18n; assert 'streamlit' not in sys.modules, 'streamlit imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_special_tokens_are_escaped_for_plotly_html() -> None:
    from ui.figures import display_token, token_labels

    assert display_token("<s>") == "&lt;s&gt;" and display_token("a&b") == "a&amp;b"
    assert token_labels(["<s>", "</s>"]) == ["0: &lt;s&gt;", "1: &lt;/s&gt;"]


def test_prediction_bars_with_one_run() -> None:
    from ui.figures import prediction_bars

    fig = prediction_bars((["a", "<b>"], [0.5, 0.25]), None, clean_label="N", ablated_label="A")
    (trace,) = fig.data
    assert trace.name == "N" and list(trace.y) == ["'a'", "'&lt;b&gt;'"]
    both = prediction_bars((["a"], [0.5]), (["b"], [0.4]), clean_label="N", ablated_label="A")
    assert [t.name for t in both.data] == ["N", "A"]


def test_ranked_bars_keep_order_and_colour_by_sign() -> None:
    from ui.figures import ranked_bars

    fig = ranked_bars(np.array([0.5, -0.3, 0.1]), ["N7", "N2", "<N9>"], title="T", item_label="Neuron",
                      value_label="Attr")
    (trace,) = fig.data
    assert trace.orientation == "h"
    np.testing.assert_allclose(np.asarray(trace.x), [0.5, -0.3, 0.1])
    assert list(trace.y) == ["N7", "N2", "&lt;N9&gt;"]
    assert list(trace.marker.color) == ["#2166ac", "#b2182b", "#2166ac"]
    assert fig.layout.yaxis.autorange == "reversed"  # the first (largest) on top
    assert "Neuron: %{y}" in trace.hovertemplate and "Attr: %{x" in trace.hovertemplate
    assert fig.layout.title.text == "T"


def test_offset_lines() -> None:
    from ui.figures import offset_lines

    fig = offset_lines(range(4), [("mean", np.array([1.0, 0.5, 0.25, 0.1])),
                                  ("observed", np.array([0.9, np.nan, 0.2, np.nan]))],
                       title="T", offset_label="Offset", value_label="Score")
    assert [t.name for t in fig.data] == ["mean", "observed"]
    assert list(fig.data[0].x) == [0, 1, 2, 3]
    assert np.isnan(np.asarray(fig.data[1].y, dtype=float)[[1, 3]]).all()
    assert fig.layout.xaxis.title.text == "Offset" and fig.layout.yaxis.title.text == "Score"
