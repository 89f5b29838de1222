"""Keep Streamlit on one navigation mechanism (``st.navigation`` in ``app.py``).

A ``pages/`` folder next to the entry point makes Streamlit start a process (and
AppTest every run) in its older automatic multipage mode, which runs ``app.py``
as a page of its own. Widget ids of that run differ from every later run, so the
first interaction of the first visitor would be silently dropped. The first
thing ``app.py`` and every page script do is to leave that mode: switch the flag
off and ask for a rerun of the page the visitor asked for (URL path or
``switch_page``), with the widget values sent. The legacy mode registers each
``pages/<x>.py`` under ``<x>``, the same ``url_path`` ``app.py`` gives it, so a
first visit to ``/<x>`` finds its page, and a page run directly by that mode
leaves it as well (AppTest re-enters the mode on every run).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState, get_script_run_ctx


def _in_legacy_run(ctx) -> bool:
    """Whether this very script run is the legacy mode's. Checked per run, not by the
    process-wide flag: two sessions whose first runs start together both began in that mode,
    though the first to get here has already switched the flag off.

    ``app.py`` run by ``st.navigation``'s mechanism runs as itself (the active script hash is
    the main script's); the legacy mode runs it as a page of its own (another hash). A page
    script is run by either mode after it registered the pages of this run: the legacy mode
    registers the entry point among them, ``app.py``'s ``st.navigation`` never does."""
    if ThreadState.get().active_script_hash == ctx.pages_manager.main_script_hash:
        return False
    main = Path(ctx.pages_manager.main_script_path).resolve()
    return any(Path(str(info.get("script_path", ""))).resolve() == main for info in ctx.pages_manager.get_pages().values())


def leave_legacy_multipage_mode() -> None:
    """Rerun under ``st.navigation`` if this run was started in the legacy pages/ mode."""
    ctx = get_script_run_ctx()
    if ctx is None or ctx.script_requests is None:  # bare mode: nothing to rerun
        PagesManager.uses_pages_directory = False
        return
    if not (PagesManager.uses_pages_directory or _in_legacy_run(ctx)):
        return
    PagesManager.uses_pages_directory = False
    pages = ctx.pages_manager
    # The widget values the visitor sent with this run; without them the switch
    # from the legacy page back to the real one would reset every widget.
    widgets = WidgetStates()
    widgets.widgets.extend(ctx.session_state.get_widget_states())
    ctx.script_requests.request_rerun(
        RerunData(
            query_string=ctx.query_string,
            page_script_hash=pages.intended_page_script_hash or "",
            page_name=pages.intended_page_name or "",
            widget_states=widgets,
            context_info=ctx.context_info,
        )
    )
    st.empty()  # a yield point: the script runner acts on the rerun request here


def open_default_page_by_name(url_path: str) -> None:
    """Let ``/<url_path>`` open the default page. ``st.navigation`` serves the default page at
    ``/`` only, so a link to ``/attention`` (the page's own name, which a teacher may hand out,
    and the one the legacy mode gives it) would pop up "Page not found" before falling back to
    it. Call before ``st.navigation``: a request for that name becomes a request for ``/``."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    pages = ctx.pages_manager
    if not pages.intended_page_script_hash and pages.intended_page_name == url_path:
        pages.set_script_intent("", "")
