"""Small Streamlit widgets shared by pages (the only ui module besides state/sidebar that draws)."""

from __future__ import annotations

from typing import Callable

import plotly.graph_objects as go
import streamlit as st

from ui.export import FORMATS, MIME, export, image_export_available


def export_buttons(fig: go.Figure, stem: str, tr: Callable[..., str]) -> None:
    """One download button per format (PNG, SVG, interactive HTML, CSV data). The file is made
    only when its button is clicked (deferred ``data``), so drawing the page stays fast."""
    st.caption(tr("export.caption"))
    images = image_export_available()
    for col, fmt in zip(st.columns(len(FORMATS)), FORMATS):
        if fmt in ("png", "svg") and not images:  # kaleido would fail: say why instead
            col.button(tr(f"export.{fmt}"), disabled=True, key=f"export_{stem}_{fmt}", width="stretch",
                       help=tr("export.no_browser"))
            continue
        col.download_button(
            tr(f"export.{fmt}"),
            data=lambda fmt=fmt: export(fig, fmt),
            file_name=f"{stem}.{fmt}",
            mime=MIME[fmt],
            key=f"export_{stem}_{fmt}",
            on_click="ignore",
            width="stretch",
        )
    if not images:
        st.caption(tr("export.no_browser"))


def error_message(tr: Callable[..., str], err: Exception, name: str) -> str:
    """The translated message of a failed computation: a PromptError's own message, else the
    generic one with the exception's text (never a traceback)."""
    from ui.patterns import PromptError

    if isinstance(err, PromptError):
        return tr(f"error.{err.code}", name=name, **err.details)
    return tr("error.forward", detail=f"{type(err).__name__}: {err}.")


def page_header(tr: Callable[..., str], page: str):
    """Title and intro of ``page`` (i18n keys ``{page}.title`` / ``{page}.intro``), then the model
    picked in the sidebar: ``(choice, model)``, or None after showing the load error."""
    from ui import state

    st.title(tr(f"{page}.title"))
    st.caption(tr(f"{page}.intro"))
    with st.spinner(tr("attention.loading_model")):
        loaded = state.load_selected_model(tr)
    if loaded.error:
        st.error(loaded.error)
        return None
    load_warnings(tr, loaded.value[1])
    return loaded.value


def load_warnings(tr: Callable[..., str], model) -> None:
    """What the loader noticed about the weights (e.g. NaN/Inf tensors), as page warnings."""
    for warning in getattr(model, "load_warnings", None) or []:
        st.warning(tr("warning.weights", detail=warning))


def unknown_words_warning(tr: Callable[..., str], model, text: str) -> None:
    """A warning listing the words of ``text`` the model reads as its unknown token."""
    from ui.prompts import unknown_words

    words = unknown_words(model, text)
    if words:
        shown = ", ".join(f"«{w}»" for w in words[:12]) + (" …" if len(words) > 12 else "")
        st.warning(tr("warning.unknown_words", words=shown))
