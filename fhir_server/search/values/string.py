"""String search values (R4 search.html#string): what a value contributes, and the folded form.

R4 string search is case- and accent-insensitive by default, so "Hélène" must find "HELENE" and
"Œuvray" must find "oeuvray". Folding happens once at write time for the index and once per query
value with the *same* function, so both sides always agree. The raw strings are kept by the
caller too, for ``:exact`` (which compares them unfolded).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

#: Letters NFKD leaves whole (ligatures, stroked letters) mapped to what a French-speaking user types.
#: Applied after casefold, so only the lower-case forms are needed (casefold already does ß → ss).
_SPECIAL = str.maketrans({
    "œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i",
    # typographic apostrophes and hyphens, frequent in copied names (d’Arc, Jean‐Pierre)
    "’": "'", "‘": "'", "ʼ": "'", "‐": "-", "‑": "-",
})

HUMAN_NAME_FIELDS = ("family", "given", "prefix", "suffix", "text")
ADDRESS_FIELDS = ("line", "city", "district", "state", "postalCode", "country", "text")
#: Both, in document order, ``text`` last (the two types share only that field).
_TEXT_FIELDS = HUMAN_NAME_FIELDS[:-1] + ADDRESS_FIELDS
#: A dict with any of these is not free text (Coding, CodeableConcept, Identifier, Reference...).
_NOT_TEXT_KEYS = frozenset({"coding", "code", "system", "value", "reference"})


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of ``text``; punctuation and hyphens are kept.

    Cached: names, cities and display texts repeat a lot across a DMP.
    """
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.translate(_SPECIAL).split())


def string_values(value) -> list[str]:
    """The raw strings one value contributes to a string parameter (the caller folds them).

    A ``str`` (string, markdown, code...) is itself; a HumanName gives family, given, prefix, suffix
    and text; an Address its lines, city, district, state, postal code, country and text; an
    Annotation its text. Anything else (numbers, booleans, coded types) contributes nothing.
    """
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict) or _NOT_TEXT_KEYS & value.keys():
        return []
    out: list[str] = []
    for field in _TEXT_FIELDS:
        out.extend(_strings(value.get(field)))
    return out


def _strings(item) -> list[str]:
    """A field that may be absent, one string or a list of strings (given, prefix, line...)."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, list):
        return [s for s in item if isinstance(s, str)]
    return []
