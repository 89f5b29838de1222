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
