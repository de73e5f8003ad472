"""The docs say what the code does: one list of events, one list of rejection codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from messages.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
EVENT_NAME = re.compile(r"`([a-z_]+\.[a-z_]+)`")
#: A refusal's code as the domain writes it: ``raise SomeError("...", code="CODE")``.
CODE = re.compile(r'code="([A-Z_]+)"')


def _paragraph(path: Path, starts: str) -> str:
    text = path.read_text(encoding="utf-8")
    begin = text.index(starts)
    return text[begin : text.index("\n\n", begin)]


@pytest.mark.parametrize(
    ("doc", "starts"),
    [
        ("README.md", "Events go to the topic exchange"),
        ("docs/architecture.md", "`store.configured`"),
    ],
)
def test_the_event_list_in_the_docs_is_the_one_the_code_publishes(doc: str, starts: str) -> None:
    listed = set(EVENT_NAME.findall(_paragraph(ROOT / doc, starts)))
    listed -= {"messages.events", "paylink.events"}
    assert listed == set(EVENT_TYPES)


def test_every_rejection_code_the_domain_raises_is_documented() -> None:
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    documented = text[text.index("## Error codes") :]
    raised = {
        code
        for path in (ROOT / "domain").glob("*.py")
        for code in CODE.findall(path.read_text(encoding="utf-8"))
    }
    assert raised, "no codes found: the pattern no longer matches the domain's style"
    missing = sorted(code for code in raised if f"`{code}`" not in documented)
    assert not missing, f"rejection codes raised but not in docs/architecture.md: {missing}"
