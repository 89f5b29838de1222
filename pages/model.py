"""Model page: the architecture of the chosen model drawn as the lecture draws it (embedding and
positions, residual blocks of attention heads and MLP writing into the residual stream,
unembedding), each part with its equation, its hook name and the live shape of its tensor.

Thin: widgets -> ui.model_view (pure) -> st.graphviz_chart / st.dataframe.
"""

import streamlit as st

from ui import state
from ui.i18n import translator
from ui.model_view import architecture_dot, stages
from ui.sidebar import family_label, summary_text
from ui.widgets import error_message, page_header
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

M_PROMPT = "model_prompt"


def render() -> None:
    tr = translator(state.current_lang())
    header = page_header(tr, "model")
    if header is None:
        return
    choice, model = header
    cfg = model.cfg
    st.markdown(f"**{cfg.model_name or choice.label}** · {family_label(tr, cfg.family)} · {summary_text(tr, cfg.summary())}")
    default = "attention.default_source" if cfg.family == "encoder-decoder" else "attention.default_prompt"
    state.set_text_default(M_PROMPT, tr, default, choice.name)
    prompt = st.text_input(tr("model.prompt"), key=M_PROMPT, help=tr("model.prompt_help"))
    try:
        rows = stages(model, prompt)
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    n_layers = tr("model.layers", n=cfg.n_layers)
    dot = architecture_dot(rows, lambda k: tr(f"model.stage.{k}"), n_layers)
    st.graphviz_chart(dot, width="content")
    st.download_button(tr("model.download_dot"), data=dot, file_name="architecture.dot", mime="text/vnd.graphviz",
                       on_click="ignore", key="dot_download")
    st.dataframe(
        [{tr("model.col.stage"): (s.stack + " " if s.stack else "") + tr(f"model.stage.{s.key}"),
          tr("model.col.equation"): s.equation, tr("model.col.hook"): s.hook or "—",
          tr("model.col.shape"): "[" + ", ".join(str(d) for d in s.shape) + "]" if s.shape else "—"} for s in rows],
        hide_index=True, width="stretch",
    )
    st.caption(tr("model.shapes_note"))


render()
