"""Transformer Circuits Workbench: Streamlit entry point.

    streamlit run app.py
"""

import streamlit as st

from ui import state
from ui.i18n import translator
from ui.sidebar import render_sidebar

tr = translator(state.current_lang())
st.set_page_config(page_title=tr("app.title"), page_icon="🔬", layout="wide")
render_sidebar()

page = st.navigation(
    [
        st.Page("app_pages/model.py", title=tr("page.model"), icon="🧱", url_path="model"),
        st.Page(
            "app_pages/attention.py", title=tr("page.attention"), icon="👁️", url_path="attention", default=True
        ),
        st.Page("app_pages/residual.py", title=tr("page.residual"), icon="🌊", url_path="residual"),
        st.Page("app_pages/circuits.py", title=tr("page.circuits"), icon="🔁", url_path="circuits"),
        st.Page("app_pages/interventions.py", title=tr("page.interventions"), icon="✂️", url_path="interventions"),
    ]
)
page.run()
