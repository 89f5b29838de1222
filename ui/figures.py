"""Plotly figures: pure functions that return ``go.Figure`` (no Streamlit calls).

All visible text (titles, axis names, hover labels) is passed in by the caller,
already translated.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go


def display_token(token: str) -> str:
    """A token as a readable, single-line label: newlines and tabs made visible, and ``<``, ``>``,
    ``&`` escaped, since Plotly renders label text as HTML (``<s>`` would start strikethrough)."""
    token = token.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return token.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def token_labels(str_tokens: Sequence[str]) -> list[str]:
    """One unique axis label per position: ``"3: the"``.

    Plotly merges equal category labels, so repeated tokens would collapse
    into one row/column without the position prefix.
    """
    return [f"{i}: {display_token(tok)}" for i, tok in enumerate(str_tokens)]


def attention_heatmap(
    pattern: np.ndarray,
    str_tokens: Sequence[str],
    *,
    key_tokens: Sequence[str] | None = None,
    title: str = "",
    query_label: str = "Query",
    key_label: str = "Key",
    weight_label: str = "Weight",
) -> go.Figure:
    """Heatmap of one head's attention pattern ``[query_pos, key_pos]``.

    Query tokens (``str_tokens``) go on the y axis (first token at the top), key tokens on the
    x axis (``key_tokens``, the same as the queries unless given: cross-attention's keys are
    the source); hovering a cell shows the query token, the key token and the weight.
    """
    pattern = np.asarray(pattern, dtype=float)
    key_tokens = str_tokens if key_tokens is None else key_tokens
    n_query, n_key = pattern.shape
    if n_query != len(str_tokens) or n_key != len(key_tokens):
        raise ValueError(
            f"pattern of shape {pattern.shape} does not match {len(str_tokens)} query and {len(key_tokens)} key tokens"
        )

    labels, key_labels = token_labels(str_tokens), token_labels(key_tokens)
    shown = [display_token(tok) for tok in str_tokens]
    shown_keys = [display_token(tok) for tok in key_tokens]
    # customdata[q][k] = (query token, key token), read by the hover template.
    customdata = np.empty((n_query, n_key, 2), dtype=object)
    for q in range(n_query):
        for k in range(n_key):
            customdata[q, k, 0] = f"{q}: {shown[q]}"
            customdata[q, k, 1] = f"{k}: {shown_keys[k]}"

    heatmap = go.Heatmap(
        z=pattern,
        x=key_labels,
        y=labels,
        zmin=0.0,
        zmax=1.0,
        colorscale="Blues",
        customdata=customdata,
        hovertemplate=(
            f"{query_label}: %{{customdata[0]}}<br>"
            f"{key_label}: %{{customdata[1]}}<br>"
            f"{weight_label}: %{{z:.3f}}<extra></extra>"
        ),
        colorbar=dict(title=dict(text=weight_label)),
    )
    fig = go.Figure(heatmap)
    # Square cells: height grows with the number of tokens, within limits.
    height = int(min(1000, max(450, 220 + 26 * n_query)))
    fig.update_layout(
        title=dict(text=title),
        height=height,
        margin=dict(l=10, r=10, t=60, b=10),
    )
    fig.update_xaxes(title_text=key_label, type="category", tickangle=-60, side="bottom", constrain="domain")
    fig.update_yaxes(
        title_text=query_label, type="category", autorange="reversed", scaleanchor="x", scaleratio=1, constrain="domain"
    )
    if n_key != n_query:  # cross-attention: height follows the queries, cells stay square
        fig.update_layout(height=int(min(1000, max(350, 220 + 26 * n_query))))
    return fig


def sweep_heatmap(
    values: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    title: str = "",
    row_label: str = "",
    column_label: str = "",
    value_label: str = "",
) -> go.Figure:
    """A patching sweep ``[rows, columns]`` (e.g. layer x position), diverging around 0: blue =
    the patch restores the clean behaviour (1), red = it pushes the other way."""
    values = np.asarray(values, dtype=float)
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=[display_token(c) for c in columns],
            y=[display_token(r) for r in rows],
            zmid=0.0,
            zmin=-max(bound, 1e-9),
            zmax=max(bound, 1e-9),
            colorscale="RdBu",
            hovertemplate=f"{row_label}: %{{y}}<br>{column_label}: %{{x}}<br>{value_label}: %{{z:.3f}}<extra></extra>",
            colorbar=dict(title=dict(text=value_label)),
        )
    )
    fig.update_layout(title=dict(text=title), height=int(min(900, max(350, 160 + 28 * len(rows)))),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=column_label, type="category", tickangle=-60)
    fig.update_yaxes(title_text=row_label, type="category", autorange="reversed")
    return fig


def prediction_bars(clean: tuple, ablated: tuple | None, *, title: str = "", clean_label: str = "clean",
                    ablated_label: str = "ablated", prob_label: str = "probability") -> go.Figure:
    """Top next-token probabilities of two runs side by side; ``clean``/``ablated`` are
    (tokens, probs) pairs (``ablated`` None: the normal run alone)."""
    fig = go.Figure()
    runs = ((clean, clean_label),) if ablated is None else ((clean, clean_label), (ablated, ablated_label))
    for (tokens, probs), name in runs:
        fig.add_trace(go.Bar(x=list(probs), y=[f"'{display_token(t)}'" for t in tokens], orientation="h", name=name,
                             hovertemplate=f"%{{y}}<br>{prob_label}: %{{x:.3f}}<extra>{name}</extra>"))
    fig.update_layout(title=dict(text=title), barmode="group", height=420, margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=prob_label, range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    return fig


def logit_lens_heatmap(
    top_tokens: Sequence[Sequence[str]],
    values: np.ndarray,
    layer_labels: Sequence[str],
    position_labels: Sequence[str],
    *,
    title: str = "",
    layer_label: str = "",
    position_label: str = "",
    value_label: str = "",
) -> go.Figure:
    """Logit lens: each cell shows the top token of the residual after a layer (rows) at a
    position (columns), coloured by ``values`` (a probability)."""
    text = [[display_token(t) for t in row] for row in top_tokens]
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(values, dtype=float),
            x=[display_token(p) for p in position_labels],
            y=list(layer_labels),
            text=text,
            texttemplate="%{text}",
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            hovertemplate=f"{layer_label}: %{{y}}<br>{position_label}: %{{x}}<br>%{{text}}<br>"
            f"{value_label}: %{{z:.3f}}<extra></extra>",
            colorbar=dict(title=dict(text=value_label)),
        )
    )
    fig.update_layout(title=dict(text=title), height=int(min(1200, max(400, 140 + 24 * len(layer_labels)))),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=position_label, type="category", tickangle=-60)
    fig.update_yaxes(title_text=layer_label, type="category", autorange="reversed")
    return fig


def layer_bars(values: np.ndarray, labels: Sequence[str], *, title: str = "", value_label: str = "") -> go.Figure:
    """One bar per layer (e.g. direct logit attribution of each layer's writes)."""
    fig = go.Figure(go.Bar(x=list(labels), y=np.asarray(values, dtype=float),
                           hovertemplate=f"%{{x}}<br>{value_label}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(title=dict(text=title), height=380, margin=dict(l=10, r=10, t=60, b=10))
    fig.update_yaxes(title_text=value_label)
    return fig


def _unit(a: float, b: float) -> list[float]:
    """An axis domain inside [0, 1] (float rounding can step just outside it)."""
    return [min(1.0, max(0.0, round(a, 6))), min(1.0, max(0.0, round(b, 6)))]


def head_grid(
    patterns: np.ndarray,
    query_tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    *,
    titles: Sequence[str],
    title: str = "",
    query_label: str = "Query",
    key_label: str = "Key",
    weight_label: str = "Weight",
    columns: int = 4,
) -> go.Figure:
    """Small multiples: one attention pattern ``[query, key]`` per panel of ``patterns[panel]``
    (the heads of a layer, or every head of every layer), sharing one colour scale; hovering a
    cell shows its panel, tokens and weight. Each trace is named after its panel (CSV export).

    The axes are laid out here rather than with ``make_subplots``, which takes seconds for the
    hundreds of panels of a deep model's every head."""
    patterns = np.asarray(patterns, dtype=float)
    key_tokens = query_tokens if key_tokens is None else key_tokens
    n = patterns.shape[0]
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    h_gap = min(0.03, 0.3 / cols)
    v_gap = min(0.08, 0.5 / rows) if rows > 1 else 0.0
    width = (1.0 - h_gap * (cols - 1)) / cols
    height = (1.0 - v_gap * (rows - 1)) / rows
    ys, xs = token_labels(query_tokens), token_labels(key_tokens)
    traces, layout, annotations = [], {}, []
    for i in range(n):
        r, c = divmod(i, cols)
        suffix = "" if i == 0 else str(i + 1)
        x0, y1 = c * (width + h_gap), 1.0 - r * (height + v_gap)
        layout[f"xaxis{suffix}"] = dict(domain=_unit(x0, x0 + width), anchor=f"y{suffix}", showticklabels=False,
                                        type="category")
        layout[f"yaxis{suffix}"] = dict(domain=_unit(y1 - height, y1), anchor=f"x{suffix}", showticklabels=False,
                                        type="category", autorange="reversed")
        traces.append(go.Heatmap(
            z=patterns[i], x=xs, y=ys, coloraxis="coloraxis", name=str(titles[i]), xaxis=f"x{suffix}",
            yaxis=f"y{suffix}",
            hovertemplate=f"{query_label}: %{{y}}<br>{key_label}: %{{x}}<br>{weight_label}: %{{z:.3f}}"
            f"<extra>{titles[i]}</extra>"))
        annotations.append(dict(text=str(titles[i]), x=x0 + width / 2, y=y1, xref="paper", yref="paper",
                                xanchor="center", yanchor="bottom", showarrow=False,
                                font=dict(size=11 if cols > 6 else 14)))
    layout.update(annotations=annotations, title=dict(text=title),
                  coloraxis=dict(colorscale="Blues", cmin=0.0, cmax=1.0, colorbar=dict(title=dict(text=weight_label))),
                  height=int(80 + max(110, min(260, 1100 // cols)) * rows), margin=dict(l=10, r=10, t=80, b=10))
    return go.Figure(data=traces, layout=layout)  # one validation pass (update_layout: seconds)


CLICK_LAYER = "click targets"  # name of the invisible marker trace that makes heatmap cells clickable


def score_heatmap(values: np.ndarray, *, title: str = "", row_label: str = "", column_label: str = "",
                  value_label: str = "", clickable: bool = False) -> go.Figure:
    """A ``[layer, head]`` table of scores in [0, 1] (head detectors). ``clickable``: an invisible
    marker on every cell, so that a click selects it (Plotly heatmaps emit no selection; the
    markers do). Exports leave that trace out."""
    values = np.asarray(values, dtype=float)
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(h) for h in range(values.shape[1])], y=[str(l) for l in range(values.shape[0])],
        zmin=0.0, zmax=1.0, colorscale="Blues", texttemplate="%{z:.2f}",
        hovertemplate=f"{row_label} %{{y}}, {column_label} %{{x}}<br>{value_label}: %{{z:.3f}}<extra></extra>",
        colorbar=dict(title=dict(text=value_label)),
    ))
    if clickable:
        rows, cols = np.meshgrid(range(values.shape[0]), range(values.shape[1]), indexing="ij")
        fig.add_trace(go.Scatter(
            x=[str(c) for c in cols.ravel()], y=[str(r) for r in rows.ravel()], mode="markers", name=CLICK_LAYER,
            marker=dict(size=28, opacity=0.01, color="#000000", symbol="square"), hoverinfo="none",  # "skip" drops clicks too
            showlegend=False))
    fig.update_layout(title=dict(text=title), height=int(min(1000, max(300, 120 + 26 * values.shape[0]))),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=column_label, type="category")
    fig.update_yaxes(title_text=row_label, type="category", autorange="reversed")
    return fig


def ranked_bars(values: np.ndarray, labels: Sequence[str], *, title: str = "", item_label: str = "",
                value_label: str = "") -> go.Figure:
    """Horizontal bars in the given order, first on top (e.g. the neurons with the largest
    |attribution|), blue for positive values and red for negative ones."""
    values = np.asarray(values, dtype=float)
    colors = ["#2166ac" if v >= 0 else "#b2182b" for v in values]
    fig = go.Figure(go.Bar(x=values, y=[display_token(str(l)) for l in labels], orientation="h",
                           marker=dict(color=colors),
                           hovertemplate=f"{item_label}: %{{y}}<br>{value_label}: %{{x:.4f}}<extra></extra>"))
    fig.update_layout(title=dict(text=title), height=int(min(1200, max(320, 120 + 24 * len(values)))),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=value_label, zeroline=True)
    fig.update_yaxes(title_text=item_label, type="category", autorange="reversed")
    return fig


def offset_lines(offsets: Sequence[int], series: Sequence[tuple[str, np.ndarray]], *, title: str = "",
                 offset_label: str = "", value_label: str = "") -> go.Figure:
    """One line per ``(name, values)`` over the query - key offset (rotary scores, ALiBi bias);
    NaN values leave gaps."""
    fig = go.Figure()
    x = [int(o) for o in offsets]
    for name, values in series:
        fig.add_trace(go.Scatter(x=x, y=np.asarray(values, dtype=float), mode="lines+markers", name=name,
                                 hovertemplate=f"{offset_label}: %{{x}}<br>{value_label}: %{{y:.4f}}"
                                 f"<extra>{name}</extra>"))
    fig.update_layout(title=dict(text=title), height=400, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text=offset_label)
    fig.update_yaxes(title_text=value_label)
    return fig


def rank_lines(layer_labels: Sequence[str], ranks: Sequence[int], *, title: str = "", layer_label: str = "",
               rank_label: str = "") -> go.Figure:
    """The rank of one token (1 = the top prediction) after each layer, on a log scale, so that
    rank 4000 and rank 3 both read."""
    fig = go.Figure(go.Scatter(x=list(layer_labels), y=[int(r) for r in ranks], mode="lines+markers+text",
                               text=[str(int(r)) for r in ranks], textposition="top center",
                               hovertemplate=f"{layer_label}: %{{x}}<br>{rank_label}: %{{y}}<extra></extra>"))
    fig.update_layout(title=dict(text=title), height=360, margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(title_text=layer_label, type="category")
    fig.update_yaxes(title_text=rank_label, type="log", autorange="reversed")
    return fig


def token_prob_bars(tokens: Sequence[str], normal: np.ndarray, ablated: np.ndarray | None, *, title: str = "",
                    normal_label: str = "normal", ablated_label: str = "ablated",
                    prob_label: str = "probability") -> go.Figure:
    """The probability of each token of a text (rows, in order; ``token_labels`` keep repeated
    tokens apart) in a normal run and, optionally, an ablated one."""
    labels = token_labels(tokens)
    fig = go.Figure()
    runs = ((normal, normal_label),) if ablated is None else ((normal, normal_label), (ablated, ablated_label))
    for values, name in runs:
        fig.add_trace(go.Bar(x=np.asarray(values, dtype=float), y=labels, orientation="h", name=name,
                             hovertemplate=f"%{{y}}<br>{prob_label}: %{{x:.3f}}<extra>{name}</extra>"))
    fig.update_layout(title=dict(text=title), barmode="group", margin=dict(l=10, r=10, t=60, b=10),
                      height=int(min(1000, max(320, 120 + 44 * len(labels)))))
    fig.update_xaxes(title_text=prob_label, range=[0, 1])
    fig.update_yaxes(type="category", autorange="reversed")
    return fig
