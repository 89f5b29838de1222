"""The sidebar shared by every page: language and model selection."""

from __future__ import annotations

import re

import streamlit as st
import torch

from ui import state
from ui.i18n import LANGUAGE_NAMES, LANGUAGES, translator


FAMILIES = ("decoder", "encoder", "encoder-decoder")


def family_label(tr, family: str) -> str:
    """"decoder" -> "decodificador" (a family this UI does not know is shown as is)."""
    return tr(f"family.{family}") if family in FAMILIES else family


_SUMMARY = re.compile(
    r"^(?P<family>[\w-]+), (?P<layers>[\d+]+) layers x (?P<heads>\d+) heads(?: \((?P<kv>\d+) kv\))?, "
    r"d_model (?P<d_model>\d+), (?P<pos>\w+) positions, (?P<norm>.+?), (?P<mlp>.+), (?P<attn>[\w-]+)$"
)


def summary_text(tr, summary: str) -> str:
    """``ModelConfig.summary()`` (English, e.g. "decoder, 2 layers x 4 heads, d_model 64, learned
    positions, pre-LayerNorm, attn-only, multi-head") in the UI language; names of techniques
    (LayerNorm, SwiGLU, d_model) stay as the lecture writes them. A line of another shape is
    shown as is."""
    m = _SUMMARY.match(summary or "")
    if m is None:
        return summary
    g = m.groupdict()
    parts = [
        family_label(tr, g["family"]),
        tr("summary.layers_heads", layers=g["layers"], heads=g["heads"])
        + (tr("summary.kv", n=g["kv"]) if g["kv"] else ""),
        f"d_model {g['d_model']}",
        tr(f"summary.pos.{g['pos']}") if g["pos"] in POSITIONS else g["pos"],
        tr("summary.no_norm") if g["norm"].endswith("no norm") else g["norm"],
        tr("summary.attn_only") if g["mlp"] == "attn-only" else g["mlp"],
        tr(f"summary.attn.{g['attn']}") if g["attn"] in ATTENTION_KINDS else g["attn"],
    ]
    return ", ".join(parts)


POSITIONS = ("learned", "sinusoidal", "rotary", "alibi", "none")
ATTENTION_KINDS = ("multi-head", "grouped-query", "multi-query")


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
                st.caption(summary_text(tr, shipped[name][1]))  # layers, heads, d_model, positions, norm, ...
        else:
            st.session_state.pop(state.MODEL_NAME_KEY, None)
            st.info(tr("sidebar.no_models"))
        st.text_input(
            tr("sidebar.folder"),
            key=state.MODEL_FOLDER_KEY,
            placeholder=tr("sidebar.folder_placeholder"),
            help=tr("sidebar.folder_help"),
        )
        config = state.settings()
        if config.model_dirs is not None:  # a shared server: say which folders may be opened
            st.caption(tr("sidebar.allowed_dirs", dirs=", ".join(str(d) for d in config.model_dirs) or "—"))
        for name, value in config.problems:
            st.warning(tr("warning.settings", name=name, value=value))
        devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        state.keep_in_options(state.DEVICE_KEY, devices)
        state.keep_in_options(state.DTYPE_KEY, list(state.DTYPES))
        with st.expander(tr("sidebar.device_header")):
            st.selectbox(tr("sidebar.device"), devices, key=state.DEVICE_KEY,
                         format_func=lambda d: tr("sidebar.device_auto") if d == "auto" else d,
                         help=tr("sidebar.device_help"))
            st.selectbox(tr("sidebar.dtype"), list(state.DTYPES), key=state.DTYPE_KEY, help=tr("sidebar.dtype_help"))
