"""Payment links: a random token the customer holds; paylink keeps only its hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


def hash_token(token: str) -> str:
    """SHA-256 hex: tokens carry 256 bits of entropy, so a plain hash cannot be brute-forced."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(slots=True)
class Link:
    link_id: UUID
    token_hash: str
    created_at: datetime
    expires_at: datetime
    delivery: Delivery = Delivery.PENDING
    #: Set when a newer link replaced this one (resend) or the order left the link stage.
    superseded: bool = False
