"""Small Streamlit widgets shared by pages (the only ui module besides state/sidebar that draws)."""

from __future__ import annotations

from typing import Callable

import plotly.graph_objects as go
import streamlit as st

from ui.export import FORMATS, MIME, export


def export_buttons(fig: go.Figure, stem: str, tr: Callable[..., str]) -> None:
    """One download button per format (PNG, SVG, interactive HTML, CSV data). The file is made
    only when its button is clicked (deferred ``data``), so drawing the page stays fast."""
    st.caption(tr("export.caption"))
    for col, fmt in zip(st.columns(len(FORMATS)), FORMATS):
        col.download_button(
            tr(f"export.{fmt}"),
            data=lambda fmt=fmt: export(fig, fmt),
            file_name=f"{stem}.{fmt}",
            mime=MIME[fmt],
            key=f"export_{stem}_{fmt}",
            on_click="ignore",
            width="stretch",
        )
