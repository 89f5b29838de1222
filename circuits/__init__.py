"""Analyses of Elhage et al. 2021 and causal interventions, as pure functions (no Streamlit).

Each function takes a model from ``models`` (decoder, encoder or encoder-decoder) and tokens, or
only its weights, and returns tensors or small dataclasses with labels.
"""
