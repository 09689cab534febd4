"""Content words: what tool matching, mentions and embeddings compare."""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "content_words"]

_STOP_WORDS_TEXT = """
    a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further get
    give had has have having he her here hers him his how i if in into is it its itself just
    let me more most my no nor not now of off on once only or other our out over own please
    same she should show so some such tell than that the their them then there these they
    this those through to too under until up use using very was we were what when where which
    while who whom why will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
"""Common English words that never count as content words."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+")


def content_words(text: str) -> list[str]:
    """Content words of text, in order.

    Text is split at non-letters, underscores and camelCase humps, lower-cased; a trailing
    ``s`` is dropped from words of four or more letters not ending in ``ss``; stop words and
    one-letter words are left out. ``"getCurrentWeathers"`` gives ``["current", "weather"]``.
    """
    words = []
    for word in _WORD.findall(_CAMEL.sub(" ", text)):
        word = word.lower()
        if len(word) < 2 or word in STOP_WORDS:
            continue
        if len(word) >= 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words
