"""Commands: imperatives an upstream system (or paylink itself) asks for.

Each command is published as the single argument of a Dramatiq message on its
family's queue (see ``messages.routing``).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AnyUrl,
    EmailStr,
    Field,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)

from messages.common import (
    MAX_LINES,
    Channel,
    CommandBase,
    Country,
    Currency,
    Customer,
    MerchantCommand,
    OrderLineIn,
    PhoneE164,
    PositiveAmount,
    ShortId,
    TaxRate,
    Text255,
    Timestamp,
    WireModel,
)

HttpsUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https"], max_length=2048)]
#: Link tokens are 43 url-safe characters (32 random bytes); accept a little slack.
LinkToken = Annotated[
    str, StringConstraints(min_length=22, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")
]
Lines = Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]
OptionalLines = Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)] | None
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] | None


class ConfigureStore(MerchantCommand):
    """Store's order configuration: T&C URL (mandatory before orders) and agreement currencies."""

    store_id: ShortId
    store_name: Text255
    terms_url: HttpsUrl | None
    agreement_currencies: Annotated[list[Currency], Field(min_length=1, max_length=50)]
    #: Remind a customer who has not opened the link this many hours before it expires
    #: (once per link); unset: no reminders. Below the 48 h a link lives.
    reminder_hours_before: Annotated[int, Field(ge=1, le=47)] | None = None
    #: An email link that bounces is sent again by SMS (a new link, same deadline), once,
    #: when the order has a phone number.
    sms_fallback: bool = False

    @field_validator("agreement_currencies")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("agreement currencies must not repeat")
        return value


class CreateOrder(MerchantCommand):
    """Seed 000's order form. ``order_id`` is chosen by the caller so it can correlate."""

    order_id: UUID
    store_id: ShortId
    customer: Customer
    purchase_country: Country
    #: Optional cross-check; the currency is decided by the purchase country.
    purchase_currency: Currency | None = None
    merchant_reference1: Text255
    merchant_reference2: Text255 | None = None
    order_lines: Lines
    auto_capture: bool = False


class SendPaymentLink(CommandBase):
    """Follow-up of CreateOrder/ResendPaymentLink: deliver the link to the customer.

    Carries the raw token: the database stores only its hash. ``reminder``: the store's
    reminder before expiry, released by the scheduler, for a link already sent.
    """

    order_id: UUID
    link_id: UUID
    token: LinkToken
    reminder: bool = False
    #: Send by this channel; None: email when the order has one, else SMS.
    channel: Channel | None = None


class ResendPaymentLink(MerchantCommand):
    order_id: UUID


class ExpirePaymentLink(CommandBase):
    """Released by the scheduler when a link's 48 h deadline has passed."""

    order_id: UUID
    link_id: UUID


class PaymentLinkOpened(CommandBase):
    """Reported by the hosted checkout when the customer opens the link."""

    token: LinkToken


class RecordLinkDelivery(CommandBase):
    """What became of a sent link, as its provider reported it (SendGrid's event
    webhook, Twilio's status callback, the local outbox). The command id follows from
    the provider's event id, so a replayed report has no second effect."""

    order_id: UUID
    link_id: UUID
    channel: Channel
    provider: ShortId
    outcome: Literal["delivered", "failed"]
    #: The provider's reason for a failure (bounce text, error code), customer data masked.
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class CheckoutProof(WireModel):
    """The hosted checkout's signature over what it reports (HMAC-SHA256 with the key
    ``key_id`` names; ``workers/runtime/checkout_proof.py`` has the exact bytes)."""

    key_id: ShortId
    signed_at: Timestamp
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class CheckoutCompleted(CommandBase):
    """Reported by the hosted checkout: the customer placed the purchase (authorized).

    ``proof`` shows that paylink's checkout reported it; a deployment that sets
    ``PAYLINK_CHECKOUT_PROOF_REQUIRED`` refuses one without a valid proof."""

    token: LinkToken
    authorization_id: ShortId
    authorized_amount: PositiveAmount
    currency: Currency
    payment_method: ShortId | None = None
    proof: CheckoutProof | None = None


class CapturePayment(MerchantCommand):
    """Capture by amount, by lines, or (neither given) the whole remaining amount."""

    order_id: UUID
    amount: PositiveAmount | None = None
    order_lines: OptionalLines = None
    description: Description = None


class RefundPayment(MerchantCommand):
    """Refund by amount, by lines, or (neither given) everything captured and not refunded.

    Lines of type ``return_fee`` among ``order_lines`` are return fees withheld from the
    refund; ``amount``, when given, is the gross refund the other lines come to.
    """

    order_id: UUID
    amount: PositiveAmount | None = None
    order_lines: OptionalLines = None
    description: Description = None


class CancelOrder(MerchantCommand):
    order_id: UUID


class ReleaseRemainingAuthorization(MerchantCommand):
    order_id: UUID


class AddReturnFee(MerchantCommand):
    """A refund of ``refund_amount`` with a return fee of ``amount`` withheld (Klarna's
    return_fee line). The fee is at most the refund; the customer gets
    ``refund_amount − amount`` back."""

    order_id: UUID
    #: The fee, tax included.
    amount: PositiveAmount
    tax_rate: TaxRate
    name: Text255 = "Return fee"
    #: Unique on the order; by default ``return-fee``, ``return-fee-2``, ...
    reference: Text255 | None = None
    #: What the returned goods are worth (gross); the fee is withheld from it.
    refund_amount: PositiveAmount


class UpdateOrderLines(MerchantCommand):
    """Replace the order lines (Authorized, or the uncaptured part when Part-captured)."""

    order_id: UUID
    order_lines: Lines


class UpdateCustomerDetails(MerchantCommand):
    order_id: UUID
    email: EmailStr | None = None
    phone: PhoneE164 | None = None
    name: Text255 | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateCustomerDetails:
        if self.email is None and self.phone is None and self.name is None:
            raise ValueError("give at least one of email, phone or name")
        return self


class EraseCustomerData(MerchantCommand):
    """A privacy request: remove the customer's email, phone and name from every order
    of ``store_id`` that has this email or phone. The money records stay."""

    store_id: ShortId
    email: EmailStr | None = None
    phone: PhoneE164 | None = None

    @model_validator(mode="after")
    def _one_contact(self) -> EraseCustomerData:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give exactly one of email or phone")
        return self


class ExpireAuthorization(CommandBase):
    """Released by the scheduler when the reservation passed its expiry."""

    order_id: UUID
