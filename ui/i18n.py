"""User-interface strings in Spanish (default) and English.

Every piece of text the app shows goes through :func:`t` (or a translator made
by :func:`translator`), so that adding a string means adding it to *both*
dictionaries below. ``tests/ui/test_i18n.py`` checks that the two languages
have the same keys and the same ``{placeholders}``.

Spanish terms follow the lecture: "cabeza de atención", "capa",
"flujo residual", "patrón de atención".
"""

from __future__ import annotations

from typing import Callable

DEFAULT_LANG = "es"

# Shown in the language selector, in their own language.
LANGUAGE_NAMES: dict[str, str] = {"es": "Español", "en": "English"}

STRINGS: dict[str, dict[str, str]] = {
    "es": {
        "app.title": "Banco de trabajo de circuitos de transformers",
        "page.attention": "Atención",
        # Sidebar
        "sidebar.language": "Idioma",
        "sidebar.model_header": "Modelo",
        "sidebar.model_select": "Modelo incluido",
        "sidebar.model_select_help": "Modelos que trae el proyecto. "
        "Se usa si la carpeta de abajo está vacía.",
        "sidebar.no_models": "No hay modelos incluidos todavía: "
        "escribe abajo la ruta de una carpeta con un checkpoint.",
        "sidebar.folder": "Carpeta de checkpoint local",
        "sidebar.folder_help": "Ruta de una carpeta con config.json, los pesos (safetensors) y el tokenizador. "
        "Si la rellenas, tiene prioridad sobre el modelo incluido. Pulsa Enter para aplicar.",
        "sidebar.folder_placeholder": "/ruta/a/mi/checkpoint",
        "sidebar.model_info": "{name} · {n_layers} capas · {n_heads} cabezas de atención por capa · "
        "flujo residual de dimensión {d_model} · contexto de {n_ctx} tokens · {device}",
        # Attention page
        "attention.title": "Patrones de atención",
        "attention.intro": "Escribe un texto y elige una capa y una cabeza de atención para ver su patrón de atención: "
        "cuánto mira cada token (consulta, eje vertical) a cada token anterior (clave, eje horizontal).",
        "attention.prompt": "Texto de entrada",
        "attention.prompt_help": "Pulsa Ctrl+Enter (o haz clic fuera) para aplicar.",
        "attention.default_prompt": "The cat sat on the mat. The cat sat on the mat.",
        "attention.layer": "Capa",
        "attention.head": "Cabeza de atención",
        "attention.running": "Ejecutando el modelo…",
        "attention.loading_model": "Cargando el modelo…",
        "attention.n_tokens": "{n} tokens",
        # Figure
        "figure.title": "Patrón de atención · capa {layer}, cabeza {head}",
        "figure.query": "Consulta (query)",
        "figure.key": "Clave (key)",
        "figure.weight": "Peso",
        # Errors: each says what went wrong and what to do.
        "error.no_model": "No hay ningún modelo seleccionado. Elige un modelo incluido en la barra lateral "
        "o escribe la ruta de una carpeta de checkpoint.",
        "error.folder_missing": "La carpeta «{path}» no existe. Comprueba la ruta en la barra lateral "
        "(debe ser una carpeta con config.json y los pesos del modelo).",
        "error.not_a_folder": "«{path}» no es una carpeta. Escribe la ruta de la carpeta que contiene "
        "config.json y los pesos, no la de un archivo.",
        "error.model_load": "No se pudo cargar el modelo «{name}»: {detail} "
        "Elige otro modelo o corrige la carpeta en la barra lateral.",
        "error.empty_prompt": "El texto de entrada está vacío. "
        "Escribe algún texto para ver los patrones de atención.",
        "error.no_tokenizer": "El modelo «{name}» no tiene tokenizador, así que no puede convertir texto en tokens. "
        "Usa un checkpoint que incluya tokenizer.json.",
        "error.prompt_too_long": "El texto tiene {n} tokens, pero el modelo admite como máximo {n_ctx}. Acórtalo.",
        "error.forward": "El modelo falló al procesar el texto: {detail} Prueba con otro texto u otro modelo.",
    },
    "en": {
        "app.title": "Transformer Circuits Workbench",
        "page.attention": "Attention",
        # Sidebar
        "sidebar.language": "Language",
        "sidebar.model_header": "Model",
        "sidebar.model_select": "Shipped model",
        "sidebar.model_select_help": "Models that ship with the project. Used when the folder below is empty.",
        "sidebar.no_models": "No shipped models yet: enter the path of a checkpoint folder below.",
        "sidebar.folder": "Local checkpoint folder",
        "sidebar.folder_help": "Path of a folder with config.json, the weights (safetensors) and the tokenizer. "
        "When filled in, it takes precedence over the shipped model. Press Enter to apply.",
        "sidebar.folder_placeholder": "/path/to/my/checkpoint",
        "sidebar.model_info": "{name} · {n_layers} layers · {n_heads} attention heads per layer · "
        "residual stream of width {d_model} · {n_ctx}-token context · {device}",
        # Attention page
        "attention.title": "Attention patterns",
        "attention.intro": "Type a text and pick a layer and an attention head to see its attention pattern: "
        "how much each token (query, vertical axis) attends to each earlier token (key, horizontal axis).",
        "attention.prompt": "Input text",
        "attention.prompt_help": "Press Ctrl+Enter (or click outside) to apply.",
        "attention.default_prompt": "The cat sat on the mat. The cat sat on the mat.",
        "attention.layer": "Layer",
        "attention.head": "Attention head",
        "attention.running": "Running the model…",
        "attention.loading_model": "Loading the model…",
        "attention.n_tokens": "{n} tokens",
        # Figure
        "figure.title": "Attention pattern · layer {layer}, head {head}",
        "figure.query": "Query",
        "figure.key": "Key",
        "figure.weight": "Weight",
        # Errors: each says what went wrong and what to do.
        "error.no_model": "No model is selected. Pick a shipped model in the sidebar "
        "or enter the path of a checkpoint folder.",
        "error.folder_missing": "The folder '{path}' does not exist. Check the path in the sidebar "
        "(it must be a folder with config.json and the model weights).",
        "error.not_a_folder": "'{path}' is not a folder. Enter the path of the folder that holds "
        "config.json and the weights, not of a file.",
        "error.model_load": "Could not load the model '{name}': {detail} "
        "Pick another model or fix the folder in the sidebar.",
        "error.empty_prompt": "The input text is empty. Type some text to see the attention patterns.",
        "error.no_tokenizer": "The model '{name}' has no tokenizer, so it cannot turn text into tokens. "
        "Use a checkpoint that includes tokenizer.json.",
        "error.prompt_too_long": "The text has {n} tokens, but the model accepts at most {n_ctx}. Shorten it.",
        "error.forward": "The model failed on this text: {detail} Try another text or another model.",
    },
}

LANGUAGES: tuple[str, ...] = tuple(STRINGS)


def t(key: str, lang: str = DEFAULT_LANG, **kwargs: object) -> str:
    """The UI string ``key`` in ``lang``, with ``{placeholders}`` filled from ``kwargs``.

    Unknown languages fall back to the default one; an unknown key raises
    ``KeyError`` (a missing translation is a bug, caught by the tests).
    """
    table = STRINGS.get(lang, STRINGS[DEFAULT_LANG])
    text = table[key]
    return text.format(**kwargs) if kwargs else text


def translator(lang: str) -> Callable[..., str]:
    """``tr(key, **kwargs)`` bound to one language."""

    def tr(key: str, **kwargs: object) -> str:
        return t(key, lang, **kwargs)

    return tr
