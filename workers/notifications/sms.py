"""SMS encoding arithmetic: how many segments a text costs, and keeping it in GSM-7.

Carriers bill per segment, and a message that needs one character outside GSM 03.38
switches the *whole* text to UCS-2, shrinking a segment from 160 to 70 characters.
So the renderer measures every SMS with :func:`sms_segments` and spells typographic
characters (no-break spaces from Babel, curly apostrophes) the GSM-7 way first.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

#: GSM 03.38 basic table (one septet each); the escape code 0x1B is left out on purpose.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: GSM 03.38 extension table: reached through the escape code, so two septets each.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: (single-segment limit, per-segment limit once concatenated: the UDH eats the rest).
_GSM7_LIMITS = (160, 153)
_UCS2_LIMITS = (70, 67)

#: Typographic characters Babel and shop owners produce, spelled in GSM-7 instead.
_GSM7_SPELLINGS = str.maketrans(
    {
        "\u00a0": " ",  # no-break space (Babel group and currency separator)
        "\u202f": " ",  # narrow no-break space (Babel, before AM/PM; fr grouping)
        "\u2009": " ",  # thin space
        "\u2007": " ",  # figure space
        "\u2019": "'",  # right single quotation mark (de_CH grouping, "Anna’s")
        "\u2018": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",  # minus sign
        "\u2026": "...",
        "\t": " ",
    }
)
#: Letters that have no Unicode decomposition but an obvious Latin spelling.
_LATIN_FALLBACKS = str.maketrans(
    {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Œ": "OE", "œ": "oe", "ð": "d"}
    | {"Þ": "Th", "þ": "th"}
)

Encoding = Literal["GSM-7", "UCS-2"]


def is_gsm7(text: str) -> bool:
    """Whether the text can travel in GSM-7 (basic or extension table)."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def sms_encoding(text: str) -> Encoding:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def sms_segments(text: str) -> int:
    """Number of SMS segments (billed messages) the text needs.

    GSM-7: extension characters cost two septets and an escape pair is never split
    across segments. UCS-2: counted in UTF-16 code units, a surrogate pair (emoji) is
    never split. An empty text still goes out as one segment.
    """
    if is_gsm7(text):
        costs = [1 if char in GSM7_BASIC else 2 for char in text]
        single, concatenated = _GSM7_LIMITS
    else:
        costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
        single, concatenated = _UCS2_LIMITS
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > concatenated:
            segments, used = segments + 1, 0
        used += cost
    return segments


def gsm7_spelling(text: str) -> str:
    """Replace typographic spaces, quotes and dashes with their GSM-7 equivalents."""
    return text.translate(_GSM7_SPELLINGS)


def gsm7_fold(text: str) -> str:
    """Best GSM-7 spelling of a name: strip accents GSM-7 lacks, drop what cannot fit.

    Used only when the real spelling would push the SMS into UCS-2 beyond two segments:
    "Kraków Ćwiczenia" becomes "Krakow Cwiczenia" rather than losing the link.
    """
    folded: list[str] = []
    for char in gsm7_spelling(text).translate(_LATIN_FALLBACKS):
        if is_gsm7(char):
            folded.append(char)
            continue
        base = "".join(part for part in unicodedata.normalize("NFKD", char) if is_gsm7(part))
        folded.append(base)
    return " ".join("".join(folded).split())
