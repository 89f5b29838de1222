"""ui.i18n: both languages have every string, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from ui.i18n import DEFAULT_LANG, LANGUAGE_NAMES, LANGUAGES, STRINGS, t, translator


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def test_languages() -> None:
    assert DEFAULT_LANG == "es"
    assert LANGUAGES == ("es", "en")
    assert LANGUAGE_NAMES == {"es": "Español", "en": "English"}


def test_same_keys_in_every_language() -> None:
    keys = {lang: set(table) for lang, table in STRINGS.items()}
    assert keys["es"] == keys["en"]


@pytest.mark.parametrize("key", sorted(STRINGS["es"]))
def test_same_placeholders_and_non_empty(key: str) -> None:
    assert placeholders(STRINGS["es"][key]) == placeholders(STRINGS["en"][key])
    assert STRINGS["es"][key].strip() and STRINGS["en"][key].strip()


def test_lecture_terms_in_spanish() -> None:
    spanish = " ".join(STRINGS["es"].values())
    for term in ("cabeza de atención", "capa", "flujo residual", "patrón de atención"):
        assert term in spanish, term


def test_t_formats_and_falls_back() -> None:
    assert t("figure.title", "en", layer=1, head=2) == "Attention pattern · layer 1, head 2"
    assert t("figure.title", "es", layer=1, head=2) == "Patrón de atención · capa 1, cabeza 2"
    assert t("attention.layer", "xx") == STRINGS[DEFAULT_LANG]["attention.layer"]
    assert translator("en")("attention.head") == "Attention head"
    with pytest.raises(KeyError):
        t("no.such.key", "en")
