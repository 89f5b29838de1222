"""Circuits page: each head as a QK circuit (where it looks) and an OV circuit (what it moves),
eigenvalue copying scores of all heads, and Q/K/V composition between heads with the random
baseline (Elhage et al. 2021). Weights only: no prompt is run.

Thin: widgets -> ui.circuits_view (pure, on circuits.qk_ov / circuits.composition) -> ui.figures.
"""

import streamlit as st

from ui import state
from ui.circuits_view import composition_view, copying_view, head_circuits_view
from ui.figures import sweep_heatmap
from ui.i18n import translator
from ui.widgets import error_message, export_buttons, page_header
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

C_LAYER, C_HEAD, C_TOKENS, C_MODE = "c_layer", "c_head", "c_tokens", "c_mode"


@st.cache_data(max_entries=8, show_spinner=False)
def _copying(model_key: str):
    return copying_view(state._load_model(model_key).model)


@st.cache_data(max_entries=12, show_spinner=False)
def _composition(model_key: str, mode: str):
    return composition_view(state._load_model(model_key).model, mode)


def render() -> None:
    tr = translator(state.current_lang())
    header = page_header(tr, "circuits")
    if header is None:
        return
    choice, model = header
    cfg = model.cfg
    if cfg.family != "decoder" or not cfg.has_logits:
        st.info(tr("error.decoder_only", name=choice.label))
        return
    head_tab, copy_tab, comp_tab = st.tabs([tr("circuits.tab_head"), tr("circuits.tab_copying"),
                                            tr("circuits.tab_composition")])
    with head_tab:
        layers, heads = list(range(cfg.n_layers)), list(range(cfg.n_heads))
        state.keep_in_options(C_LAYER, layers)
        state.keep_in_options(C_HEAD, heads)
        a, b = st.columns(2)
        layer = a.selectbox(tr("attention.layer"), layers, key=C_LAYER)
        head = b.selectbox(tr("attention.head"), heads, key=C_HEAD)
        state.set_default(C_TOKENS, tr("circuits.default_tokens"))
        text = st.text_input(tr("circuits.tokens"), key=C_TOKENS, help=tr("circuits.tokens_help"))
        try:
            view = head_circuits_view(model, layer, head, text)
        except Exception as err:  # noqa: BLE001 - a message, never a traceback
            st.error(error_message(tr, err, choice.label))
        else:
            qk = sweep_heatmap(view.qk, view.labels, view.labels, title=tr("circuits.qk_title", layer=layer, head=head),
                               row_label=tr("figure.query"), column_label=tr("figure.key"),
                               value_label=tr("circuits.score"))
            st.plotly_chart(qk, width="stretch", key="qk_chart")
            export_buttons(qk, f"qk_L{layer}H{head}", tr)
            ov = sweep_heatmap(view.ov, view.labels, view.labels, title=tr("circuits.ov_title", layer=layer, head=head),
                               row_label=tr("circuits.source"), column_label=tr("circuits.output"),
                               value_label=tr("circuits.logit"))
            st.plotly_chart(ov, width="stretch", key="ov_chart")
            export_buttons(ov, f"ov_L{layer}H{head}", tr)
    with copy_tab:
        st.caption(tr("circuits.copying_intro"))
        with st.spinner(tr("circuits.computing")):
            scores = _copying(choice.key)
        fig = sweep_heatmap(scores, [str(l) for l in range(cfg.n_layers)], [str(h) for h in range(cfg.n_heads)],
                            title=tr("circuits.copying_title"), row_label=tr("attention.layer"),
                            column_label=tr("attention.head"), value_label=tr("circuits.copying"))
        st.plotly_chart(fig, width="stretch", key="copying_chart")
        export_buttons(fig, "copying_scores", tr)
    with comp_tab:
        mode = st.radio(tr("circuits.mode"), ["Q", "K", "V"], index=1, key=C_MODE, horizontal=True)
        with st.spinner(tr("circuits.computing")):
            comp = _composition(choice.key, mode)
        st.caption(tr("circuits.baseline", mean=comp.baseline_mean, std=comp.baseline_std))
        top = ", ".join(f"{w} → {r} ({s:.3f})" for w, r, s in comp.top[:5])
        st.markdown(tr("circuits.top_pairs", pairs=top))
        fig = sweep_heatmap(comp.matrix - comp.baseline_mean, comp.writer_labels, comp.reader_labels,
                            title=tr("circuits.composition_title", mode=mode), row_label=tr("circuits.writer"),
                            column_label=tr("circuits.reader"), value_label=tr("circuits.above_baseline"))
        st.plotly_chart(fig, width="stretch", key="composition_chart")
        export_buttons(fig, f"composition_{mode}", tr)


render()
