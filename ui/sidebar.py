"""The sidebar shared by every page: language and model selection."""

from __future__ import annotations

import streamlit as st

from ui import state
from ui.i18n import LANGUAGE_NAMES, LANGUAGES, translator


def render_sidebar() -> None:
    """Draw the language selector and the model picker.

    The selections live in ``st.session_state`` under the keys in ``ui.state``;
    pages read them through ``ui.state``.
    """
    tr = translator(state.current_lang())
    with st.sidebar:
        st.radio(
            tr("sidebar.language"),
            options=LANGUAGES,
            format_func=LANGUAGE_NAMES.__getitem__,
            key=state.LANG_KEY,
            horizontal=True,
        )
        st.subheader(tr("sidebar.model_header"))
        try:
            names = state.shipped_model_names()
        except Exception:  # noqa: BLE001 - a broken model list must not break the app
            names = []
        if names:
            state.keep_in_options(state.MODEL_NAME_KEY, names)
            st.selectbox(
                tr("sidebar.model_select"),
                options=names,
                index=0,
                key=state.MODEL_NAME_KEY,
                help=tr("sidebar.model_select_help"),
            )
        else:
            st.session_state.pop(state.MODEL_NAME_KEY, None)
            st.info(tr("sidebar.no_models"))
        st.text_input(
            tr("sidebar.folder"),
            key=state.MODEL_FOLDER_KEY,
            placeholder=tr("sidebar.folder_placeholder"),
            help=tr("sidebar.folder_help"),
        )
