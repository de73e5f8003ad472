"""A log scan: which secrets of a customer or a link appear in some captured text.

``Needles`` holds what must never be read in logs: a link token, an email address, a
phone number, a name. Each is searched in the forms a leak would take (the number
without its ``+``, the address's local part, each part of the name), so a partial
leak is found too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Needles:
    tokens: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    #: Words that may legitimately appear although they are part of a name.
    ignore: frozenset[str] = field(default_factory=frozenset)

    def forms(self) -> Iterator[tuple[str, str]]:
        """(kind, text) for every form of every needle that must not appear."""
        for token in self.tokens:
            yield "token", token
            yield "token", token[8:-8]  # a part of it: a wrapped or cut line
        for email in self.emails:
            yield "email", email
            yield "email", email.partition("@")[0]
        for phone in self.phones:
            yield "phone", phone
            yield "phone", phone.lstrip("+")
            yield "phone", phone[3:]  # the national significant number
        for name in self.names:
            yield "name", name
            for part in name.split():
                if len(part) >= 3 and part not in self.ignore:
                    yield "name", part


def leaks(text: str, needles: Needles) -> list[str]:
    """Every needle form found in ``text``, as "kind: form" (empty when clean)."""
    return sorted({f"{kind}: {form}" for kind, form in needles.forms() if form in text})


def assert_no_leaks(text: str, needles: Needles) -> None:
    found = leaks(text, needles)
    assert not found, f"found in the logs: {found}"
