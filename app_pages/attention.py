"""Attention page: one head's attention pattern on a prompt.

Thin on purpose: widgets -> ui.state (cached pure computations) -> ui.figures.
"""

import streamlit as st

from ui import state
from ui.figures import attention_heatmap
from ui.i18n import translator


def render() -> None:
    tr = translator(state.current_lang())
    st.title(tr("attention.title"))
    st.caption(tr("attention.intro"))

    state.set_default(state.PROMPT_KEY, tr("attention.default_prompt"))
    prompt = st.text_area(tr("attention.prompt"), key=state.PROMPT_KEY, help=tr("attention.prompt_help"), height=100)

    with st.spinner(tr("attention.loading_model")):
        loaded = state.load_selected_model(tr)
    if loaded.error:
        st.error(loaded.error)
        return
    choice, model = loaded.value
    cfg = model.cfg
    st.caption(
        tr(
            "sidebar.model_info",
            name=getattr(cfg, "model_name", None) or choice.label,
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            d_model=cfg.d_model,
            n_ctx=cfg.n_ctx,
            device=cfg.device,
        )
    )

    layer_col, head_col = st.columns(2)
    layers, heads = list(range(cfg.n_layers)), list(range(cfg.n_heads))
    state.keep_in_options(state.LAYER_KEY, layers)
    state.keep_in_options(state.HEAD_KEY, heads)
    layer = layer_col.selectbox(tr("attention.layer"), layers, key=state.LAYER_KEY)
    head = head_col.selectbox(tr("attention.head"), heads, key=state.HEAD_KEY)

    with st.spinner(tr("attention.running")):
        result = state.attention_patterns(choice, prompt, tr)
    if result.error:
        st.error(result.error)
        return
    patterns = result.value
    st.caption(tr("attention.n_tokens", n=len(patterns.str_tokens)))
    fig = attention_heatmap(
        patterns.head(layer, head),
        patterns.str_tokens,
        title=tr("figure.title", layer=layer, head=head),
        query_label=tr("figure.query"),
        key_label=tr("figure.key"),
        weight_label=tr("figure.weight"),
    )
    st.plotly_chart(fig, width="stretch", key="attention_heatmap")


render()
