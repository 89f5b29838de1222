"""Circuits page: each head as a QK circuit (where it looks) and an OV circuit (what it moves),
the positional part of its QK circuit and the singular directions of its OV matrix, eigenvalue
copying scores of all heads, and Q/K/V composition between heads with the random baseline
(Elhage et al. 2021). Weights only, except the rotary view, which runs a probe text.
Encoder-decoders: the encoder's, the decoder's or the cross-attention's heads (cross-attention:
target-word queries, source-word keys); encoders without a head: the QK side only.

Thin: widgets -> ui.circuits_view (pure, on circuits.qk_ov / circuits.composition) -> ui.figures.
"""

import streamlit as st

from ui import state
from ui.circuits_view import (
    head_circuits_view,
    kind_shape,
    positional_kind,
    positional_view,
    shown_token,
    svd_view,
)
from ui.figures import layer_bars, offset_lines, sweep_heatmap
from ui.i18n import translator
from ui.patterns import attention_kinds
from ui.snippets import (
    composition_snippet,
    copying_snippet,
    head_circuits_snippet,
    positional_snippet,
    svd_snippet,
)
from ui.widgets import error_message, export_buttons, page_header
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

C_LAYER, C_HEAD, C_TOKENS, C_MODE = "c_layer", "c_head", "c_tokens", "c_mode"
C_VIEW, C_POSITIONS, C_PROBE, C_DIRECTIONS = "c_view", "c_positions", "c_probe", "c_directions"
C_KIND, C_TARGET_TOKENS = "c_kind", "c_target_tokens"
HEAD_VIEWS = ("tokens", "positions", "svd")
SVD_TOKENS = 8


def tokens_view(tr, choice, model, layer: int, head: int, kind: str) -> None:
    """Full QK and OV circuits of one head on the tokens of a text (an encoder-decoder: a source
    and a target text)."""
    seq2seq = model.cfg.family == "encoder-decoder"
    state.set_text_default(C_TOKENS, tr, "attention.default_source" if seq2seq else "circuits.default_tokens",
                           choice.name)
    text = st.text_input(tr("circuits.source_tokens" if seq2seq else "circuits.tokens"), key=C_TOKENS,
                         help=tr("circuits.tokens_help"))
    target = ""
    if seq2seq:
        state.set_text_default(C_TARGET_TOKENS, tr, "circuits.default_target_tokens", choice.name)
        target = st.text_input(tr("circuits.target_tokens"), key=C_TARGET_TOKENS, help=tr("circuits.tokens_help"))
    try:
        view = head_circuits_view(model, layer, head, text, kind, target)
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    name = head_name(kind, layer, head)
    qk = sweep_heatmap(view.qk, view.query_labels, view.key_labels,
                       title=tr("circuits.qk_title", layer=layer, head=head) + kind_suffix(tr, kind),
                       row_label=tr("figure.query"), column_label=tr("figure.key"), value_label=tr("circuits.score"))
    st.plotly_chart(qk, width="stretch", key="qk_chart")
    export_buttons(qk, f"qk_{name}", tr)
    if view.ov is None:
        st.info(tr("circuits.no_ov", name=choice.label))
    else:
        ov = sweep_heatmap(view.ov, view.key_labels, view.output_labels,
                           title=tr("circuits.ov_title", layer=layer, head=head) + kind_suffix(tr, kind),
                           row_label=tr("circuits.source"), column_label=tr("circuits.output"),
                           value_label=tr("circuits.logit"))
        st.plotly_chart(ov, width="stretch", key="ov_chart")
        export_buttons(ov, f"ov_{name}", tr)
    with st.expander(tr("code.title")):
        st.code(head_circuits_snippet(choice.name, layer, head, text, kind, target), language="python")


def kind_suffix(tr, kind: str) -> str:
    """`` · cross-attention`` after a title, for an encoder-decoder's three attentions."""
    return "" if kind == "self" else f" · {tr(f'attention.kind.{kind}')}"


def head_name(kind: str, layer: int, head: int) -> str:
    """File-name stem of a head: ``L1H3``, ``CL1H3`` (cross), ``EL0H2`` (encoder)..."""
    from circuits.heads import head_label

    return head_label(layer, head, kind)


def positions_view(tr, choice, model, layer: int, head: int, kind: str) -> None:
    """Positional part of one head's QK circuit: position table, rotary offsets or ALiBi bias."""
    cfg = model.cfg
    attention = kind
    kind = positional_kind(model, layer, attention)
    if kind == "none":
        st.info(tr("circuits.no_positions", name=choice.label))
        return
    top = int(min(cfg.n_ctx, 128))
    state.set_default(C_POSITIONS, min(32, top))
    if not 2 <= st.session_state[C_POSITIONS] <= top:  # a model with a shorter context was picked
        st.session_state[C_POSITIONS] = min(32, top)
    label = "circuits.n_positions" if kind == "table" else "circuits.n_offsets"
    n = int(st.number_input(tr(label), min_value=2, max_value=top, step=1, key=C_POSITIONS))
    probe = ""
    if kind == "rotary":
        state.set_text_default(C_PROBE, tr, "circuits.default_probe", choice.name)
        probe = st.text_input(tr("circuits.probe"), key=C_PROBE, help=tr("circuits.probe_help"))
    try:
        view = positional_view(model, layer, head, n, probe, attention)
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    if view.kind == "table":
        st.caption(tr("circuits.pos_intro"))
        labels = [str(p) for p in view.positions]
        fig = sweep_heatmap(view.values, labels, labels, title=tr("circuits.pos_title", layer=layer, head=head),
                            row_label=tr("circuits.query_pos"), column_label=tr("circuits.key_pos"),
                            value_label=tr("circuits.score"))
        stem = f"positional_qk_{head_name(attention, layer, head)}"
    elif view.kind == "rotary":
        st.caption(tr("circuits.rotary_intro"))
        fig = offset_lines(view.positions, [(tr("circuits.mean_qk"), view.values),
                                            (tr("circuits.observed"), view.observed)],
                           title=tr("circuits.rotary_title", layer=layer, head=head),
                           offset_label=tr("circuits.offset"), value_label=tr("circuits.score"))
        stem = f"rotary_offsets_L{layer}H{head}"
    else:
        st.info(tr("circuits.alibi_slope", slope=view.slope))
        fig = offset_lines(view.positions, [(tr("circuits.bias"), view.values)],
                           title=tr("circuits.alibi_title", layer=layer, head=head),
                           offset_label=tr("circuits.offset"), value_label=tr("circuits.bias"))
        stem = f"alibi_bias_L{layer}H{head}"
    st.plotly_chart(fig, width="stretch", key="positional_chart")
    export_buttons(fig, stem, tr)
    with st.expander(tr("code.title")):
        st.code(positional_snippet(choice.name, layer, head, view.kind, n, probe, attention), language="python")


def singular_view(tr, choice, model, layer: int, head: int, kind: str) -> None:
    """Singular values of one head's OV matrix and the tokens its top directions read and write."""
    import pandas as pd

    if not model.cfg.has_logits:
        st.info(tr("circuits.no_ov", name=choice.label))
        return

    top = int(min(model.cfg.d_head, 10))
    state.set_default(C_DIRECTIONS, min(3, top))
    if not 1 <= st.session_state[C_DIRECTIONS] <= top:
        st.session_state[C_DIRECTIONS] = min(3, top)
    n = int(st.number_input(tr("circuits.n_directions"), min_value=1, max_value=top, step=1, key=C_DIRECTIONS))
    try:
        view = svd_view(model, layer, head, n, SVD_TOKENS, kind)
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    st.caption(tr("circuits.svd_intro"))
    fig = layer_bars(view.singular_values, [f"σ{i + 1}" for i in range(len(view.singular_values))],
                     title=tr("circuits.svd_title", layer=layer, head=head), value_label=tr("circuits.singular_value"))
    st.plotly_chart(fig, width="stretch", key="svd_chart")
    export_buttons(fig, f"ov_svd_{head_name(kind, layer, head)}", tr)

    def joined(rows, i):
        return ", ".join(shown_token(t) for t in rows[i])

    table = pd.DataFrame({
        tr("circuits.direction"): [f"σ{i + 1}" for i in range(len(view.read_top))],
        tr("circuits.singular_value"): [float(view.singular_values[i]) for i in range(len(view.read_top))],
        tr("circuits.reads"): [joined(view.read_top, i) for i in range(len(view.read_top))],
        tr("circuits.writes"): [joined(view.write_top, i) for i in range(len(view.read_top))],
        tr("circuits.reads_opposite"): [joined(view.read_bottom, i) for i in range(len(view.read_top))],
        tr("circuits.writes_opposite"): [joined(view.write_bottom, i) for i in range(len(view.read_top))],
    })
    st.dataframe(table, hide_index=True, key="svd_table")
    with st.expander(tr("code.title")):
        st.code(svd_snippet(choice.name, layer, head, n, SVD_TOKENS, kind), language="python")


def copying_tab(tr, choice, model, kind: str) -> None:
    st.caption(tr("circuits.copying_intro"))
    if not model.cfg.has_logits:
        st.info(tr("circuits.no_ov", name=choice.label))
        return
    with st.spinner(tr("circuits.computing")):
        scores = state.cached_copying(choice.key, kind)
    fig = sweep_heatmap(scores, [str(l) for l in range(scores.shape[0])], [str(h) for h in range(scores.shape[1])],
                        title=tr("circuits.copying_title") + kind_suffix(tr, kind), row_label=tr("attention.layer"),
                        column_label=tr("attention.head"), value_label=tr("circuits.copying"))
    st.plotly_chart(fig, width="stretch", key="copying_chart")
    export_buttons(fig, f"copying_scores_{kind}", tr)
    with st.expander(tr("code.title")):
        st.code(copying_snippet(choice.name, kind), language="python")


def composition_tab(tr, choice, model, kind: str) -> None:
    mode = st.radio(tr("circuits.mode"), ["Q", "K", "V"], index=1, key=C_MODE, horizontal=True)
    try:
        with st.spinner(tr("circuits.computing")):
            comp = state.cached_composition(choice.key, mode, kind)
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    st.caption(tr("circuits.baseline", mean=comp.baseline_mean, std=comp.baseline_std))
    top = ", ".join(f"{w} → {r} ({s:.3f})" for w, r, s in comp.top[:5])
    st.markdown(tr("circuits.top_pairs", pairs=top))
    fig = sweep_heatmap(comp.matrix - comp.baseline_mean, comp.writer_labels, comp.reader_labels,
                        title=tr("circuits.composition_title", mode=mode) + kind_suffix(tr, kind),
                        row_label=tr("circuits.writer"), column_label=tr("circuits.reader"),
                        value_label=tr("circuits.above_baseline"))
    st.plotly_chart(fig, width="stretch", key="composition_chart")
    export_buttons(fig, f"composition_{mode}_{kind}", tr)
    with st.expander(tr("code.title")):
        st.code(composition_snippet(choice.name, mode, kind), language="python")


def render() -> None:
    tr = translator(state.current_lang())
    header = page_header(tr, "circuits")
    if header is None:
        return
    choice, model = header
    kinds = list(attention_kinds(model.cfg))
    state.keep_in_options(C_KIND, kinds)
    kind = kinds[0]
    if len(kinds) > 1:
        kind = st.radio(tr("attention.kind"), kinds, key=C_KIND, horizontal=True,
                        format_func=lambda k: tr(f"attention.kind.{k}"))
    n_layers, n_heads = kind_shape(model, kind)
    head_tab, copy_tab, comp_tab = st.tabs([tr("circuits.tab_head"), tr("circuits.tab_copying"),
                                            tr("circuits.tab_composition")])
    with head_tab:
        layers, heads = list(range(n_layers)), list(range(n_heads))
        state.keep_in_options(C_LAYER, layers)
        state.keep_in_options(C_HEAD, heads)
        a, b = st.columns(2)
        layer = a.selectbox(tr("attention.layer"), layers, key=C_LAYER)
        head = b.selectbox(tr("attention.head"), heads, key=C_HEAD)
        state.keep_in_options(C_VIEW, list(HEAD_VIEWS))
        which = st.radio(tr("circuits.view"), list(HEAD_VIEWS), key=C_VIEW, horizontal=True,
                         format_func=lambda v: tr(f"circuits.view.{v}"))
        if which == "positions":
            positions_view(tr, choice, model, layer, head, kind)
        elif which == "svd":
            singular_view(tr, choice, model, layer, head, kind)
        else:
            tokens_view(tr, choice, model, layer, head, kind)
    with copy_tab:
        copying_tab(tr, choice, model, kind)
    with comp_tab:
        composition_tab(tr, choice, model, kind)


render()
