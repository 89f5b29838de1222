"""The sidebar shared by every page: language and model selection."""

from __future__ import annotations

import streamlit as st
import torch

from ui import state
from ui.i18n import LANGUAGE_NAMES, LANGUAGES, translator


FAMILIES = ("decoder", "encoder", "encoder-decoder")


def family_label(tr, family: str) -> str:
    """"decoder" -> "decodificador" (a family this UI does not know is shown as is)."""
    return tr(f"family.{family}") if family in FAMILIES else family


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
            shipped = state.shipped_models()
        except Exception:  # noqa: BLE001 - a broken model list must not break the app
            shipped = {}
        names = list(shipped)
        if names:
            state.keep_in_options(state.MODEL_NAME_KEY, names)
            name = st.selectbox(
                tr("sidebar.model_select"),
                options=names,
                index=0,
                key=state.MODEL_NAME_KEY,
                format_func=lambda n: f"{n} · {family_label(tr, shipped[n][0])}",
                help=tr("sidebar.model_select_help"),
            )
            if name in shipped:
                st.caption(shipped[name][1])  # layers, heads, d_model, positions, norm, attention kind
        else:
            st.session_state.pop(state.MODEL_NAME_KEY, None)
            st.info(tr("sidebar.no_models"))
        st.text_input(
            tr("sidebar.folder"),
            key=state.MODEL_FOLDER_KEY,
            placeholder=tr("sidebar.folder_placeholder"),
            help=tr("sidebar.folder_help"),
        )
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        state.keep_in_options(state.DEVICE_KEY, devices)
        state.keep_in_options(state.DTYPE_KEY, list(state.DTYPES))
        with st.expander(tr("sidebar.device_header")):
            st.selectbox(tr("sidebar.device"), devices, key=state.DEVICE_KEY,
                         format_func=lambda d: tr("sidebar.device_auto") if d == "auto" else d,
                         help=tr("sidebar.device_help"))
            st.selectbox(tr("sidebar.dtype"), list(state.DTYPES), key=state.DTYPE_KEY, help=tr("sidebar.dtype_help"))
