"""Domain errors: a small hierarchy whose type says whether a failure retries.

Every refusal carries a stable ``code`` (part of the wire contract: it appears in
``order.rejected`` events) and a human ``message``. Messages never contain customer
email addresses or phone numbers, because they reach logs and events.
"""

from __future__ import annotations


class PaylinkError(Exception):
    """Base of everything paylink raises on purpose."""

    #: Whether the runtime should retry the command (with backoff).
    retryable: bool = False


class DomainError(PaylinkError):
    """A command that cannot be carried out. Never retried; becomes ``order.rejected``."""

    code: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class NotFound(DomainError):
    code = "NOT_FOUND"


class PermissionDenied(DomainError):
    code = "ROLE_NOT_ALLOWED"


class StoreAccessDenied(PermissionDenied):
    code = "STORE_ACCESS_DENIED"


class ConfigurationError(DomainError):
    code = "STORE_NOT_CONFIGURED"


class ActionNotAllowed(DomainError):
    code = "ACTION_NOT_ALLOWED_IN_STATUS"


class AmountError(DomainError):
    code = "AMOUNT_INVALID"


class LinkError(DomainError):
    code = "LINK_INVALID"


class DuplicateCommandConflict(DomainError):
    """Same ``command_id`` seen before with a different payload."""

    code = "DUPLICATE_COMMAND_CONFLICT"


class TransientError(PaylinkError):
    """Infrastructure hiccup (database, broker, provider 429/5xx): retry with backoff."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryDeferred(TransientError):
    """The notification provider asked us to come back later (429, 5xx, timeout)."""


class DeliveryRejected(PaylinkError):
    """The provider refused the message for good (invalid number, blocked address).

    Not retried: the link is marked undeliverable and ``link.delivery_failed`` is
    published with ``reason`` (the provider's own words, with recipients masked).
    """

    def __init__(
        self, reason: str, *, provider_code: str | None = None, provider: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_code = provider_code
        self.provider = provider


class InvariantViolation(PaylinkError):
    """A rule the aggregate guarantees did not hold: a bug, never the caller's fault.

    Raised instead of ``assert`` (which ``python -O`` removes); nothing is written, the
    delivery is not retried by the domain, and the message dead-letters with the reason.
    """
