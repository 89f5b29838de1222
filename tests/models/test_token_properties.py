"""Property-based tests (hypothesis) of text <-> token ids (``models.tokens``) on every kind of
tokenizer the workbench ships: byte-level BPE (the tiny GPT-2 of ``conftest``, SmolLM2 when it is
installed), word-level (``induction-2l``, ``translator-es-en``) and WordPiece (MiniLM, when
installed).

Texts are whatever a student may paste: any Unicode (emoji, Arabic, CJK, Cyrillic, combining
marks, control characters, odd whitespace), empty, whitespace-only, very long, and, for the
word-level models, their own vocabulary dressed up (capitals, accents, punctuation), and the
tokenizer's own special tokens typed in ("<bos>", "[CLS]", "<|endoftext|>"). Properties:

* tokenizing any text never raises; every id is in ``[0, d_vocab)``; a string holding surrogate
  code points (half an emoji from UTF-16) reads as UTF-8 would hold it (pair joined, lone one U+FFFD);
* the model's special tokens frame the tokenizer's own ids (BOS before a decoder's prompt exactly
  once, [CLS] ... [SEP], ... </s>), and padded batches hold each text's ids;
* byte-level BPE decodes back to the exact text; word-level tokenizers decode to the text's
  normalised words (unknown ones as ``<unk>``); every tokenizer is idempotent:
  ``encode(decode(encode(x))) == encode(x)``;
* one string-token label per id, the same from text or from ids;
* ``ui.prompts.prompt_tokens`` returns the ids or raises its ``PromptError``, nothing else.

Fixed seeds (``derandomize``) keep CI reproducible.
"""

from __future__ import annotations

import re
import string
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import models
from models import tokens as T

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ----------------------------------------------------------------------------- texts
EMOJI = "😀🎉👍🏽👨‍👩‍👧🇪🇸❤️🤖"
ARABIC = "مرحبا بالعالم عربى"
CJK = "漢字日本語中文한국어ｶﾀｶﾅ"
CYRILLIC = "Привет мир ёЁ"
OTHER_SCRIPTS = "Ελληνικά עברית हिन्दी ไทย"
COMBINING = "\u0300\u0301\u0302\u0308\u0327\u0336\u20dd"
CONTROL = "\x00\x01\x07\x08\x1b\x7f\x85\u200b\u200c\u200d\u200e\u202e\u2066\ufeff\ufffd"
WHITESPACE = " \t\n\r\x0b\x0c\x1c\xa0\u1680\u2003\u2028\u2029\u202f\u3000"
LATIN = string.ascii_letters + string.digits + string.punctuation + "áéíóúñÑüÜçÇß¿¡«»ﬁİı"

MIXED = st.sampled_from(sorted(set(EMOJI + ARABIC + CJK + CYRILLIC + OTHER_SCRIPTS + COMBINING + CONTROL
                                   + WHITESPACE + LATIN)))
TEXTS = st.one_of(
    st.text(),  # any Unicode string hypothesis makes (everything but lone surrogates)
    st.text(alphabet=MIXED),  # mixed scripts, combining marks, control characters
    st.text(alphabet=st.sampled_from(WHITESPACE), max_size=8),  # empty and whitespace-only
    st.builds(lambda s, n: s * n, st.text(alphabet=MIXED, min_size=1, max_size=12), st.integers(50, 400)),  # long
)


@st.composite
def dressed_words(draw, vocab: list[str]) -> str:
    """Words of the tokenizer's vocabulary as someone types them: capitals, accents, punctuation,
    glued to odd characters, separated by any whitespace."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        word = draw(st.sampled_from(vocab)) if draw(st.integers(0, 3)) else draw(st.text(alphabet=MIXED, max_size=3))
        style = draw(st.sampled_from(["plain", "upper", "title", "accent", "punct"]))
        if style == "upper":
            word = word.upper()
        elif style == "title":
            word = word.title()
        elif style == "accent" and word:
            word = word[0] + "\u0301" + word[1:]
        elif style == "punct":
            word = word + draw(st.sampled_from(list(".,;:!?¡¿\"()«»-'")))
        parts.append(word)
        parts.append(draw(st.sampled_from([" ", "  ", "\n", "\t", " \u00a0", ""])))
    return "".join(parts)


# ----------------------------------------------------------------------------- models
# name -> how it tokenizes ("bytes": exact round trip, "words": word-level, "wordpiece") and the
# special tokens the model puts around the text's own ids (None: the decoder's BOS, if any).
MODELS = {
    "tiny-gpt2": ("bytes", None, ()),
    "smollm2-135m-instruct": ("bytes", None, ()),
    "induction-2l": ("words", None, ()),
    "translator-es-en": ("words", (), ("</s>",)),
    "minilm-l6": ("wordpiece", ("[CLS]",), ("[SEP]",)),
}


@pytest.fixture(scope="module", params=list(MODELS))
def tok(request, tiny_gpt2_dir):
    """The model, how it tokenizes, the ids it puts before and after a text; one load per model."""
    name = request.param
    if name == "tiny-gpt2":
        model = models.load_pretrained(str(tiny_gpt2_dir), device="cpu")
    else:
        if name not in {i.name for i in models.list_models()}:
            pytest.skip(f"{name} is not installed")
        model = models.load_pretrained(name, device="cpu")
    kind, prefix, suffix = MODELS[name]
    t = model.tokenizer
    assert t is not None
    if prefix is None:  # a decoder: BOS when the model prepends one
        assert model.cfg.family == "decoder"
        prefix = [t.bos_token_id] if model.cfg.default_prepend_bos and t.bos_token_id is not None else []
    else:
        prefix = t.convert_tokens_to_ids(list(prefix))
    suffix = t.convert_tokens_to_ids(list(suffix))
    return Tok(name=name, model=model, t=t, kind=kind, prefix=prefix, suffix=suffix,
               vocab=_words(t, model.cfg.d_vocab) if kind == "words" else None,
               missing_bytes=_missing_bytes(t) if kind == "bytes" else frozenset())


class Tok(SimpleNamespace):
    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example: keep it short
        return f"<{self.name}>"


def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map of byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _missing_bytes(t) -> frozenset[int]:
    """Bytes without a token of their own: a byte-level BPE without ``byte_fallback`` drops them
    (SmolLM2's vocabulary lacks a few control characters and bytes no valid UTF-8 needs)."""
    vocab = t.get_vocab()
    return frozenset(b for b, c in _byte_chars().items() if c not in vocab)


def byte_level_text(tok, text: str) -> str:
    """What a byte-level BPE can give back: ``text`` without the bytes it has no token for."""
    if not tok.missing_bytes:
        return text
    kept = bytes(b for b in text.encode("utf-8") if b not in tok.missing_bytes)
    return kept.decode("utf-8", errors="replace")


def _words(t, d_vocab: int) -> list[str]:
    special = set(t.all_special_ids)
    return [t.convert_ids_to_tokens(i) for i in range(d_vocab) if i not in special]


@st.composite
def with_special_tokens(draw, specials: list[str]) -> str:
    """Text with the tokenizer's own special tokens typed into it ("<bos>", "[CLS]", "</s>" ...)."""
    pieces = draw(st.lists(st.one_of(st.sampled_from(specials), st.text(alphabet=MIXED, max_size=6)), max_size=6))
    return "".join(pieces)


def texts_for(tok):
    options = [TEXTS, with_special_tokens(sorted(tok.t.all_special_tokens))]
    if tok.vocab:
        options.append(dressed_words(tok.vocab))
    return st.one_of(options)


def as_utf8(text: str) -> str:
    """``text`` as UTF-8 can hold it: a high + low surrogate pair is the character it encodes, a
    surrogate left alone is U+FFFD (written out here, independently of ``models.tokens``)."""
    out, i = [], 0
    while i < len(text):
        c = ord(text[i])
        if 0xD800 <= c < 0xDC00 and i + 1 < len(text) and 0xDC00 <= ord(text[i + 1]) < 0xE000:
            out.append(chr(0x10000 + ((c - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if 0xD800 <= c < 0xE000 else text[i])
        i += 1
    return "".join(out)


def content(tok, text: str) -> list[int]:
    """The text's own ids: the tokenizer itself, without any special tokens (the reference)."""
    return tok.t.encode(as_utf8(text), add_special_tokens=False)


def framed(tok, own: list[int]) -> list[int]:
    """The model's ids for a text whose own ids are ``own``: a decoder's BOS first (unless the text
    itself starts with it), an encoder's [CLS] ... [SEP], the translator's ... </s>."""
    if tok.model.cfg.family == "decoder" and own[:1] == tok.prefix:
        return own
    return tok.prefix + own + tok.suffix


def own_ids(tok, text: str, ids: list[int]) -> list[int]:
    """The text's own ids, after checking that ``ids`` are them in the model's frame."""
    own = content(tok, text)
    assert ids == framed(tok, own), (ids, own)
    return own


def decode(tok, ids: list[int]) -> str:
    out = T.to_string(tok.model, ids)
    assert isinstance(out, str)
    return out


# ----------------------------------------------------------------------------- properties
@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
@example(data=None)  # the empty text, always
def test_any_text_tokenizes_to_valid_ids(tok, data):
    text = "" if data is None else data.draw(texts_for(tok), label="text")
    ids = T.encode(tok.model, text)
    assert all(isinstance(i, int) and 0 <= i < tok.model.cfg.d_vocab for i in ids), ids
    tokens, mask = T.to_tokens_and_mask(tok.model, text)
    assert tokens.dtype == torch.long and tokens.shape == (1, len(ids)) and tokens[0].tolist() == ids
    assert bool(mask.all())
    assert tok.model.to_tokens(text)[0].tolist() == ids


@settings(max_examples=40, **SETTINGS)
@given(text=st.lists(st.one_of(st.characters(categories=["Cs"]), st.text(alphabet=MIXED, max_size=3)),
                     min_size=1, max_size=8).map("".join))
@example(text="\ud83d")  # half of an emoji, as a UTF-16 source cut in the middle leaves it
@example(text="\ud83d\ude00")  # both halves: the emoji itself
def test_surrogates_are_read_as_utf8(tok, text):
    """A Python string may hold surrogate code points, which no UTF-8 text can (the tokenizers are
    UTF-8): a pair reads as the character it encodes, a lone surrogate as U+FFFD, never an error."""
    ids = T.encode(tok.model, text)
    assert ids == T.encode(tok.model, as_utf8(text))
    assert all(0 <= i < tok.model.cfg.d_vocab for i in ids)
    assert len(T.to_str_tokens(tok.model, text)) == len(ids)
    if tok.name == "tiny-gpt2":
        assert decode(tok, own_ids(tok, text, ids)) == as_utf8(text)


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_special_tokens_frame_the_text(tok, data):
    """The model adds exactly its own special tokens around the tokenizer's ids of the text: a
    decoder's BOS once (not twice when the text itself starts with it), [CLS] ... [SEP], ... </s>;
    ``prepend_bos`` switches a decoder's BOS on and off."""
    text = data.draw(texts_for(tok), label="text")
    ids = T.encode(tok.model, text)
    own = own_ids(tok, text, ids)
    if tok.model.cfg.family == "decoder":
        assert T.encode(tok.model, text, prepend_bos=False) == own
        bos = tok.t.bos_token_id
        if bos is not None:
            with_bos = T.encode(tok.model, text, prepend_bos=True)
            assert with_bos == (own if own[:1] == [bos] else [bos] + own)
            assert len(with_bos) == len(own) + (own[:1] != [bos])
    if tok.model.cfg.family == "encoder-decoder":  # the decoder's side: its start token, then the text
        target, mask = T.to_target_tokens_and_mask(tok.model, text)
        assert target[0].tolist() == [tok.model._decoder_start()] + own and bool(mask.all())


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_padded_batches_hold_each_texts_ids(tok, data):
    texts = data.draw(st.lists(texts_for(tok), min_size=1, max_size=4), label="texts")
    tokens, mask = T.to_tokens_and_mask(tok.model, texts)
    rows = [framed(tok, content(tok, x)) for x in texts]
    assert tokens.shape == (len(texts), max(len(r) for r in rows))
    pad = T.pad_id(tok.model)
    assert 0 <= pad < tok.model.cfg.d_vocab
    for i, r in enumerate(rows):
        assert tokens[i, : len(r)].tolist() == r and (tokens[i, len(r):] == pad).all()
        assert mask[i].tolist() == [1] * len(r) + [0] * (tokens.shape[1] - len(r))


def normalised_words(tok, text: str) -> list[str]:
    """A word-level tokenizer's pieces of ``text``: its special tokens as typed, the rest through
    its normalizer and pre-tokenizer, words it does not know as its unknown token."""
    backend, specials = tok.t.backend_tokenizer, sorted(tok.t.all_special_tokens, key=len, reverse=True)
    vocab, words = set(tok.vocab), []
    for i, piece in enumerate(re.split("(" + "|".join(map(re.escape, specials)) + ")", text)):
        if i % 2:  # a special token
            words.append(piece)
            continue
        for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(piece)):
            words.append(w if w in vocab else tok.t.unk_token)
    return words


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
@example(data=None)
def test_decode_round_trip(tok, data):
    """Byte-level BPE: decode(encode(x)) == x exactly (SmolLM2: but for the few bytes its
    vocabulary lacks). Word-level: the decoded text is the text's normalised words (its own
    normalizer and pre-tokenizer), unknown words as ``<unk>``, joined by spaces. (WordPiece: no
    exact round trip, see the idempotence property.)"""
    text = "" if data is None else data.draw(texts_for(tok), label="text")
    ids = T.encode(tok.model, text)
    own = own_ids(tok, text, ids)
    decoded = decode(tok, own)
    if tok.kind == "bytes":
        assert decoded == byte_level_text(tok, text)
        assert decode(tok, ids) == ("" if len(ids) == len(own) else tok.t.bos_token) + decoded
        if tok.name == "tiny-gpt2":  # every byte has a token: the round trip is exact for every text
            assert not tok.missing_bytes and decoded == text
    elif tok.kind == "words":
        assert decoded == " ".join(normalised_words(tok, text))


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_encode_decode_is_idempotent(tok, data):
    """encode(decode(encode(x))) == encode(x): what the tokenizer makes of a text, decoded, reads
    back as the same tokens (every tokenizer, even the lossy word-level and WordPiece ones; a
    byte-level BPE that dropped bytes it has no token for decodes the broken UTF-8 left as U+FFFD,
    which reads back differently: there decode . encode is still a projection, P(P(x)) == P(x))."""
    text = data.draw(texts_for(tok), label="text")
    ids = T.encode(tok.model, text)
    once = decode(tok, own_ids(tok, text, ids))
    again = T.encode(tok.model, once)
    if tok.kind != "bytes" or byte_level_text(tok, text) == text:
        assert again == ids
    assert decode(tok, own_ids(tok, once, again)) == once


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_one_label_per_token(tok, data):
    """String-token labels (``to_str_tokens``, used for every axis and hover label) are one per id,
    the same from the text, from a list of ids or from a tensor, each the decoding of its own id."""
    from circuits.qk_ov import token_labels
    from circuits.residual import token_strings

    text = data.draw(texts_for(tok), label="text")
    ids = T.encode(tok.model, text)
    labels = T.to_str_tokens(tok.model, text)
    assert len(labels) == len(ids) and all(isinstance(s, str) for s in labels)
    assert T.to_str_tokens(tok.model, ids) == labels
    assert tok.model.to_str_tokens(torch.tensor([ids])) == labels
    assert labels == [tok.t.decode([i], clean_up_tokenization_spaces=False) for i in ids]
    if ids:
        assert token_labels(tok.model, torch.tensor(ids)) == labels
        strings = token_strings(tok.model, torch.tensor(ids))
        assert [strings[i] for i in ids] == labels
    if tok.kind == "bytes" and text.isascii():  # whole characters: the labels spell the text
        assert "".join(labels[len(ids) - len(content(tok, text)):]) == byte_level_text(tok, text)


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
@example(data=None)
def test_prompt_check_gives_ids_or_a_prompt_error(tok, data):
    """The pages' one entry point for typed text either returns the model's ids, with at least one
    token of the text itself, or raises ``PromptError`` (a translated message), never anything else."""
    from ui.patterns import PromptError
    from ui.prompts import prompt_tokens

    text = "" if data is None else data.draw(texts_for(tok), label="text")
    try:
        tokens = prompt_tokens(tok.model, text)
    except PromptError as e:
        assert e.code in {"empty_prompt", "no_tokens", "text_too_long", "prompt_too_long", "prompt_over_limit"}, e
        if not text.strip():
            assert e.code == "empty_prompt"
        if e.code == "no_tokens":  # really nothing but the model's special tokens
            assert set(T.encode(tok.model, text)) <= set(tok.t.all_special_ids) - {tok.t.unk_token_id}
        return
    assert text.strip()
    assert tokens.shape[0] == 1 and tokens[0].tolist() == T.encode(tok.model, text)
    assert 0 < tokens.shape[1] <= tok.model.cfg.n_ctx


def test_word_level_tokens_are_single_tokens(tok):
    """Every word of a word-level vocabulary is one token and its label reads back as that token."""
    if tok.kind != "words":
        pytest.skip("word-level tokenizers only (a BPE piece need not re-encode to itself)")
    special = set(tok.t.all_special_ids)
    for i in range(tok.model.cfg.d_vocab):
        if i in special:
            continue
        label = T.to_str_tokens(tok.model, [i])[0]
        assert T.to_single_token(tok.model, label) == i, (i, label)
    with pytest.raises(ValueError, match="not one"):
        T.to_single_token(tok.model, f"{tok.vocab[0]} {tok.vocab[1]}")
