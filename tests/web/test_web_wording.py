"""Every language of the page says everything English says, with the same fields."""

from __future__ import annotations

import string
from dataclasses import fields

import pytest

from workers.notifications.templates import TEMPLATES
from workers.web.wording import ENGLISH, WORDINGS, Wording, negotiate_locale, wording_for


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_page_has_a_wording_for_every_language_the_emails_have() -> None:
    assert set(WORDINGS) == set(TEMPLATES)


@pytest.mark.parametrize("key", sorted(WORDINGS))
def test_each_phrase_is_written_and_has_the_fields_english_has(key: str) -> None:
    wording = WORDINGS[key]

    for f in fields(Wording):
        text = getattr(wording, f.name)
        assert text.strip(), f"{key}.{f.name} is empty"
        assert _placeholders(text) == _placeholders(getattr(ENGLISH, f.name)), f.name


def test_swiss_german_writes_ss_for_sharp_s() -> None:
    assert "ß" not in "".join(getattr(wording_for("de_CH"), f.name) for f in fields(Wording))
    assert wording_for("de_CH").language == "de-CH"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("sv-SE,sv;q=0.9", "sv"),
        ("no,en;q=0.5", "nb"),
        ("de-CH", "de-CH"),
        ("da", "da"),
        ("fr-FR,fr;q=0.9", "en"),
        ("", "en"),
        ("*;q=0.1, !!bad", "en"),
    ],
)
def test_a_page_without_an_order_follows_the_browser(header: str, language: str) -> None:
    assert wording_for(str(negotiate_locale(header))).language == language
