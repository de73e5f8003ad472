"""One redaction for everything paylink writes where people read: log lines, provider
error texts (which become ``link.delivery_failed`` events) and retry tracebacks.

It masks what must never be read there: email addresses (internationalised ones too,
``jörg.müller@exämple.de``, ``用户@例子.广告``), phone numbers with or without ``+``, link
tokens, the values of fields that hold names or contact data (``'name': 'Jörg'`` in a
dumped dict), the parameters SQLAlchemy quotes in its errors and the rows PostgreSQL
quotes in ``DETAIL``. Names cannot be recognised in free text, so the values of the
message being processed are also masked wherever they appear (``known_values``, bound
per message by ``workers.runtime.broker.Redaction``). Control characters are escaped, so a
hostile value cannot drive the terminal of someone reading a console log.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from domain.notifications import mask_recipient

#: Keys whose values are personal data or secrets, in dicts and in text dumps of them.
SENSITIVE_KEYS = frozenset(
    {"name", "customer_name", "email", "customer_email", "phone", "customer_phone", "token"}
)
#: What a masked value becomes when there is nothing of it worth keeping.
MASK = "***"
#: Known values shorter than this are not searched for ("Al" would mask every "Al...").
MIN_KNOWN_LENGTH = 3
#: At most this many values of one message are searched for in each line.
MAX_KNOWN_VALUES = 64

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
#: "+" and 7 to 15 digits, maybe grouped; a bare run of 7 to 15 digits; a national
#: number grouped by spaces or dashes (070-123 45 67). Never a part of a UUID or a word.
_PHONE = re.compile(
    r"\+\d(?:[\s().-]?\d){6,14}"
    r"|(?<![\w-])\d{7,15}(?![\w-])"
    r"|(?<![\w-])0\d{1,4}(?:[ -]\d{2,4}){2,4}(?![\w-])"
)
#: A link token is 43 URL-safe characters from 256 random bits: a long run with upper
#: and lower case letters (UUIDs, hex digests and snake_case names have only one case).
TOKEN_RUN_LENGTH = 32
_TOKEN_RUN = re.compile(rf"(?<![\w-])[\w-]{{{TOKEN_RUN_LENGTH},}}(?![\w-])", re.ASCII)
_SENSITIVE_PAIR = re.compile(
    r"""(?P<key>["']?\b(?:"""
    + "|".join(sorted(SENSITIVE_KEYS, key=len, reverse=True))
    + r""")\b["']?\s*[:=]\s*)(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;)}\]]+)"""
)
#: SQLAlchemy's "[parameters: ...]" line and PostgreSQL's "DETAIL: ..." (a failing row).
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_PG_DETAIL = re.compile(r"DETAIL:[^\n]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

#: Values of the message this thread is processing, longest first: masked wherever
#: they appear.
known_values: ContextVar[tuple[str, ...]] = ContextVar("paylink_known_values", default=())


def redact(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with personal data, tokens and control characters masked."""
    values = known_values.get()
    if known:
        values = tuple(sorted({*known, *values}, key=len, reverse=True))
    for value in values:
        if len(value) >= MIN_KNOWN_LENGTH and value in text:
            text = text.replace(value, _mask(value))
    return _redact_patterns(text) if len(text) > MAX_CACHED_LENGTH else _redact_short(text)


#: Short values repeat (ids bound to every line of a message, event names), so their
#: redaction is cached: a "command processed" line costs 24 us of CPU with the cache,
#: 31 without, 18 with the earlier email-and-phone masking (20 000 lines, best of 3,
#: three lines per message).
MAX_CACHED_LENGTH = 200


@lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    return _redact_patterns(text)


def _redact_patterns(text: str) -> str:
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub("[parameters: hidden]", text)
    if "DETAIL:" in text:
        text = _PG_DETAIL.sub("DETAIL: hidden", text)
    if ":" in text or "=" in text:
        text = _SENSITIVE_PAIR.sub(lambda m: m.group("key") + MASK, text)
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_recipient(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_recipient(re.sub(r"[\s().-]", "", m.group(0))), text)
    if len(text) >= TOKEN_RUN_LENGTH:
        text = _TOKEN_RUN.sub(_mask_token, text)
    if text.isprintable():
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def redact_value(value: object, key: str | None = None) -> object:
    """``value`` redacted through dicts, lists and tuples; sensitive keys masked whole."""
    if key is not None and key.lower() in SENSITIVE_KEYS and value is not None:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def personal_values(command: object) -> tuple[str, ...]:
    """The values of a command (a decoded payload) that identify a person or open a
    link: what ``known_values`` should hold while it is processed. Breadth first, so a
    customer's details come before a thousand order lines' names; longest first."""
    found: set[str] = set()
    queue: deque[Any] = deque([command])
    while queue and len(found) < MAX_KNOWN_VALUES:
        item = queue.popleft()
        children = item.items() if isinstance(item, Mapping) else enumerate(item)
        for key, value in children:
            if isinstance(value, str) and str(key).lower() in SENSITIVE_KEYS:
                if len(value) >= MIN_KNOWN_LENGTH:
                    found.add(value)
            elif isinstance(value, Mapping | list):
                queue.append(value)
    return tuple(sorted(found, key=len, reverse=True))


def _mask(value: str) -> str:
    return mask_recipient(value) if "@" in value or value.startswith("+") else MASK


def _mask_token(match: re.Match[str]) -> str:
    run = match.group(0)
    if any(c.isupper() for c in run) and any(c.islower() for c in run):
        return run[:4] + MASK
    return run
