"""Transformer Circuits Workbench: Streamlit entry point.

    streamlit run app.py
"""

import streamlit as st

from ui import state
from ui.i18n import translator
from ui.navigation import leave_legacy_multipage_mode, open_default_page_by_name
from ui.sidebar import render_sidebar

leave_legacy_multipage_mode()  # see ui/navigation.py: st.navigation is the only navigation

tr = translator(state.current_lang())
st.set_page_config(page_title=tr("app.title"), page_icon=":material/biotech:", layout="wide")
render_sidebar()

# url_path = file stem: the legacy mode registers pages/*.py under their stems, so a
# first visit to /circuits finds its page there too (no "page not found"). Material icons ship
# with Streamlit: they draw without an emoji font on the machine.
open_default_page_by_name("attention")  # the default page below: /attention opens it too
page = st.navigation(
    [
        st.Page("pages/model.py", title=tr("page.model"), icon=":material/account_tree:", url_path="model"),
        st.Page(
            "pages/attention.py", title=tr("page.attention"), icon=":material/visibility:", url_path="attention", default=True
        ),
        st.Page("pages/residual.py", title=tr("page.residual"), icon=":material/waves:", url_path="residual"),
        st.Page("pages/circuits.py", title=tr("page.circuits"), icon=":material/hub:", url_path="circuits"),
        st.Page("pages/interventions.py", title=tr("page.interventions"), icon=":material/content_cut:", url_path="interventions"),
    ]
)
page.run()
