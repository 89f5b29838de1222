"""Ablate & patch page: ablate heads and see the next-token predictions change (an
encoder-decoder: its translation); patch clean activations into a corrupted run, layer by layer,
and see which components carry the behaviour.

Thin: widgets -> ui.interventions (pure) -> ui.figures. Sweep results are kept in the session
(per inputs), so changing nothing but the display never reruns a sweep.
"""

import streamlit as st

from ui import state
from ui.figures import prediction_bars, sweep_heatmap
from ui.i18n import translator
from ui.interventions import ABLATION_KINDS, SWEEPS, ablation_predictions, head_names, patching_sweep
from ui.snippets import patching_snippet
from ui.widgets import error_message, export_buttons, page_header, unknown_words_warning
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

ABL_PROMPT, ABL_HEADS, ABL_KIND, ABL_REF = "abl_prompt", "abl_heads", "abl_kind", "abl_reference"
P_CLEAN, P_CORRUPT, P_ANSWER, P_WRONG, P_SWEEP = "p_clean", "p_corrupted", "p_answer", "p_wrong", "p_sweep"
RESULTS = "_sweep_results"
ABL_SOURCE, ABL_SEQ2SEQ_HEADS = "abl_source", "abl_seq2seq_heads"


def ablation_tab(tr, choice, model) -> None:
    from ui.interventions import has_mlp, layer_names
    from ui.snippets import ablation_snippet

    abl_layers, abl_neurons = "abl_layers", "abl_neurons"
    cfg = model.cfg
    state.set_text_default(ABL_PROMPT, tr, "interventions.default_prompt", choice.name)
    prompt = st.text_area(tr("attention.prompt"), key=ABL_PROMPT, height=80)
    unknown_words_warning(tr, model, prompt)
    names, whole = head_names(cfg), layer_names(cfg)
    state.keep_in_options(ABL_KIND, list(ABLATION_KINDS))
    st.session_state[ABL_HEADS] = [h for h in st.session_state.get(ABL_HEADS, []) if h in names]
    st.session_state[abl_layers] = [n for n in st.session_state.get(abl_layers, []) if n in whole]
    h_col, l_col = st.columns(2)
    heads = h_col.multiselect(tr("interventions.heads"), names, key=ABL_HEADS, help=tr("interventions.heads_help"),
                              placeholder=tr("widget.choose"))
    layers = l_col.multiselect(tr("interventions.layers"), whole, key=abl_layers,
                               help=tr("interventions.layers_help"), placeholder=tr("widget.choose"))
    neurons = ""
    if has_mlp(cfg):
        neurons = st.text_input(tr("interventions.neurons"), key=abl_neurons, placeholder="L0N12, L1N5",
                                help=tr("interventions.neurons_help", n_layers=cfg.n_layers - 1, d_mlp=cfg.d_mlp - 1))
    kind = st.radio(tr("interventions.kind"), list(ABLATION_KINDS), key=ABL_KIND, horizontal=True,
                    format_func=lambda k: tr(f"interventions.kind.{k}"))
    reference = ""
    if kind != "zero":
        state.set_text_default(ABL_REF, tr, None, choice.name)
        reference = st.text_input(tr("interventions.reference"), key=ABL_REF, help=tr("interventions.reference_help"))
    try:
        out = ablation_predictions(model, prompt, heads, kind, reference, layers=layers, neurons=neurons)
    except Exception as err:  # noqa: BLE001 - shown in the page, never raised
        st.error(error_message(tr, err, choice.label))
        return
    labels = dict(title=tr("interventions.predictions_title"), clean_label=tr("interventions.normal"),
                  ablated_label=tr("interventions.ablated"), prob_label=tr("interventions.probability"))
    if not out.ablated_names:  # nothing picked: the normal run alone
        st.info(tr("interventions.nothing_ablated"))
        st.metric(tr("interventions.loss_clean"), f"{out.clean_loss:.3f}")
        fig = prediction_bars((out.clean.tokens, out.clean.probs), None, **labels)
    else:
        st.caption(tr("interventions.ablated_list", kind=tr(f"interventions.kind.{kind}"),
                      items=", ".join(out.ablated_names)))
        c1, c2, c3 = st.columns(3)
        c1.metric(tr("interventions.loss_clean"), f"{out.clean_loss:.3f}")
        c2.metric(tr("interventions.loss_ablated"), f"{out.ablated_loss:.3f}",
                  f"{out.ablated_loss - out.clean_loss:+.3f}", delta_color="inverse")
        c3.metric(tr("interventions.kl"), f"{out.kl:.3f}")
        fig = prediction_bars((out.clean.tokens, out.clean.probs), (out.ablated.tokens, out.ablated.probs), **labels)
    st.plotly_chart(fig, width="stretch", key="ablation_chart")
    export_buttons(fig, "ablation_predictions", tr)
    with st.expander(tr("code.title")):
        st.code(ablation_snippet(choice.name, prompt, out.ablations, reference), language="python")


def patching_tab(tr, choice, model) -> None:
    for key, default in ((P_CLEAN, "interventions.default_clean"), (P_CORRUPT, "interventions.default_corrupted"),
                         (P_ANSWER, "interventions.default_answer"), (P_WRONG, "interventions.default_wrong")):
        state.set_text_default(key, tr, default, choice.name)
    st.caption(tr("interventions.patch_intro"))
    clean = st.text_input(tr("interventions.clean"), key=P_CLEAN)
    corrupted = st.text_input(tr("interventions.corrupted"), key=P_CORRUPT)
    a, w, s = st.columns(3)
    answer = a.text_input(tr("interventions.answer"), key=P_ANSWER, help=tr("interventions.token_help"))
    wrong = w.text_input(tr("interventions.wrong"), key=P_WRONG, help=tr("interventions.token_help"))
    state.keep_in_options(P_SWEEP, list(SWEEPS))
    sweep = s.selectbox(tr("interventions.sweep"), list(SWEEPS), key=P_SWEEP,
                        format_func=lambda k: tr(f"interventions.sweep.{k}"))
    key = (choice.key, clean, corrupted, answer, wrong, sweep)
    results = st.session_state.setdefault(RESULTS, {})
    if st.session_state.get("p_cancel"):  # the cancel button was clicked: Streamlit stopped the sweep's run
        st.warning(tr("interventions.cancelled"))
    if st.button(tr("interventions.run"), type="primary", key="p_run") and key not in results:
        bar = st.progress(0.0, text=tr("interventions.running"))
        # Clicking it starts a new run of the page, which stops this one at its next progress update
        # (the sweep's hooks are removed by their context manager on the way out).
        cancel = st.empty()
        cancel.button(tr("interventions.cancel"), key="p_cancel")
        try:
            results[key] = patching_sweep(
                model, clean, corrupted, answer, wrong, sweep,
                progress=lambda done, total: bar.progress(done / total, text=tr("interventions.progress", done=done,
                                                                                  total=total)))
        except Exception as err:  # noqa: BLE001
            bar.empty()
            cancel.empty()
            st.error(error_message(tr, err, choice.label))
            return
        bar.empty()
        cancel.empty()
        while len(results) > 8:  # keep the session small
            results.pop(next(iter(results)))
    table = results.get(key)
    if table is None:
        st.info(tr("interventions.press_run"))
        return
    st.caption(tr("interventions.metric_values", clean=table.clean, corrupted=table.corrupted))
    axis = {"position": tr("interventions.position"), "head": tr("attention.head"), "layer": tr("attention.layer")}
    fig = sweep_heatmap(table.values, table.rows, table.columns, title=tr(f"interventions.sweep.{sweep}"),
                        row_label=axis[table.row_axis], column_label=axis[table.column_axis],
                        value_label=tr("interventions.restored"))
    st.plotly_chart(fig, width="stretch", key="sweep_chart")
    export_buttons(fig, f"patching_{sweep}", tr)
    with st.expander(tr("code.title")):
        st.code(patching_snippet(choice.name, clean, corrupted, answer, wrong, sweep), language="python")


def translation_tab(tr, choice, model) -> None:
    """Encoder-decoders: zero heads (encoder, decoder or cross-attention) and read the translation."""
    from ui.figures import token_prob_bars
    from ui.seq2seq_ablation import seq2seq_head_names, translation_ablation
    from ui.snippets import translation_ablation_snippet

    st.caption(tr("interventions.seq2seq_intro"))
    state.set_text_default(ABL_SOURCE, tr, "attention.default_source", choice.name)
    source = st.text_area(tr("attention.source"), key=ABL_SOURCE, height=80)
    unknown_words_warning(tr, model, source)
    names = seq2seq_head_names(model)
    st.session_state[ABL_SEQ2SEQ_HEADS] = [h for h in st.session_state.get(ABL_SEQ2SEQ_HEADS, []) if h in names]
    heads = st.multiselect(tr("interventions.heads"), names, key=ABL_SEQ2SEQ_HEADS,
                           help=tr("interventions.seq2seq_heads_help"), placeholder=tr("widget.choose"))
    try:
        out = translation_ablation(model, source, heads)
    except Exception as err:  # noqa: BLE001 - shown in the page, never raised
        st.error(error_message(tr, err, choice.label))
        return
    st.info(tr("interventions.translation_normal", text=out.normal_text or "∅"))
    if not heads:
        st.caption(tr("interventions.seq2seq_nothing"))
    else:
        changed = out.ablated_text != out.normal_text
        (st.warning if changed else st.success)(tr("interventions.translation_ablated", text=out.ablated_text or "∅",
                                                   items=", ".join(heads)))
        c1, c2 = st.columns(2)
        c1.metric(tr("interventions.loss_clean"), f"{out.normal_loss:.3f}")
        c2.metric(tr("interventions.loss_ablated"), f"{out.ablated_loss:.3f}", f"{out.ablated_loss - out.normal_loss:+.3f}",
                  delta_color="inverse")
    fig = token_prob_bars(out.tokens, out.normal_probs, out.ablated_probs if heads else None,
                          title=tr("interventions.translation_probs_title"), normal_label=tr("interventions.normal"),
                          ablated_label=tr("interventions.ablated"), prob_label=tr("interventions.probability"))
    st.plotly_chart(fig, width="stretch", key="translation_chart")
    export_buttons(fig, "translation_ablation", tr)
    with st.expander(tr("code.title")):
        st.code(translation_ablation_snippet(choice.name, source, heads), language="python")


def render() -> None:
    tr = translator(state.current_lang())
    header = page_header(tr, "interventions")
    if header is None:
        return
    choice, model = header
    if model.cfg.family == "encoder-decoder":
        ablate_tab, patch_tab = st.tabs([tr("interventions.tab_ablate"), tr("interventions.tab_patch")])
        with ablate_tab:
            translation_tab(tr, choice, model)
        with patch_tab:
            st.info(tr("interventions.patch_decoder_only", name=choice.label))
        return
    if model.cfg.family != "decoder":
        st.info(tr("error.decoder_only", name=choice.label))
        return
    ablate_tab, patch_tab = st.tabs([tr("interventions.tab_ablate"), tr("interventions.tab_patch")])
    with ablate_tab:
        ablation_tab(tr, choice, model)
    with patch_tab:
        patching_tab(tr, choice, model)


render()
