"""Streamlit-side helpers of the workbench app.

* ``ui.i18n``     - every UI string, in Spanish and English.
* ``ui.figures``  - pure Plotly figure builders (no Streamlit calls).
* ``ui.patterns`` - pure computations on a model (no Streamlit calls).
* ``ui.state``    - session state, model loading and all caching.
* ``ui.sidebar``  - the sidebar shared by every page.
"""
