"""Store configuration: the T&C URL and the agreement currencies gate order creation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import ConfigurationError


@dataclass(slots=True)
class Store:
    store_id: str
    name: str
    #: Seed 000: "a valid link to your Terms and Conditions is uploaded ... (mandatory)".
    terms_url: str | None
    agreement_currencies: tuple[str, ...]
    #: A bounced email link is sent again by SMS (``ConfigureStore.sms_fallback``).
    sms_fallback: bool = False
    #: Hours before a link expires to remind a customer who has not opened it; None: never.
    reminder_hours_before: int | None = None

    def reminder_due(self, expires_at: datetime, now: datetime) -> datetime | None:
        """When to remind of a link expiring at ``expires_at``: None when this store sends
        no reminders, or when that moment is already past (a very short-lived link)."""
        if self.reminder_hours_before is None:
            return None
        due = expires_at - timedelta(hours=self.reminder_hours_before)
        return due if due > now else None

    def ensure_accepts_orders_in(self, currency: str) -> None:
        if not self.terms_url or not self.terms_url.startswith("https://"):
            raise ConfigurationError(
                f"store {self.store_id!r} has no Terms and Conditions URL; upload one in "
                "Orders configuration before creating orders",
                code="TERMS_NOT_CONFIGURED",
            )
        if currency not in self.agreement_currencies:
            raise ConfigurationError(
                f"currency {currency} is not in the agreement of store {self.store_id!r} "
                f"(agreement: {', '.join(self.agreement_currencies)}); contact support to "
                "review your added currencies",
                code="CURRENCY_NOT_IN_AGREEMENT",
            )
