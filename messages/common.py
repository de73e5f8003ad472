"""Shared wire types: strict base model, bounded scalars, actor, customer, order line."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217
from pydantic_extra_types.phone_numbers import PhoneNumberValidator

#: DESIGN section 2: unit_price and total_amount are bounded at 100 000 000 minor units.
MAX_AMOUNT = 100_000_000
#: DESIGN section 2: an order has 1..1000 lines.
MAX_LINES = 1000

Text255 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ShortId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[\w.\-:]+$"),
]
PhoneE164 = Annotated[str, PhoneNumberValidator(number_format="E164")]
Amount = Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, strict=True)]
PositiveAmount = Annotated[int, Field(gt=0, le=MAX_AMOUNT * MAX_LINES, strict=True)]
NonNegativeAmount = Annotated[int, Field(ge=0, le=MAX_AMOUNT * MAX_LINES, strict=True)]
#: Tax rate in basis points: 2500 means 25 %.
TaxRate = Annotated[int, Field(ge=0, le=10_000, strict=True)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]
Country = CountryAlpha2
Currency = ISO4217
Timestamp = AwareDatetime


#: Format characters some scripts need inside words (Persian, Indic: zero-width
#: non-joiner and joiner); every other control (Cc) or format (Cf) character is refused.
ALLOWED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})


def refuse_control_characters(text: str) -> str:
    """``text`` unchanged, or ValueError naming its first control or format character.

    Such characters have no place in a name, a reference or an id, and they reach an
    operator's terminal (``ESC]0;`` retitles it, ``ESC[2J`` clears it) and the customer's
    email (bidirectional overrides reorder what is shown).
    """
    if text.isprintable():  # C speed; false for every Cc and Cf character (and others)
        return text
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf") and char not in ALLOWED_FORMAT_CHARACTERS:
            raise ValueError(
                f"text may not contain control or format characters (found U+{ord(char):04X})"
            )
    return text


def _refuse_in(value: Any) -> None:
    if isinstance(value, str):
        refuse_control_characters(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _refuse_in(item)


class WireModel(BaseModel):
    """Every message is strict about unknown fields and immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=4096)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        """Text from the wire (validated as JSON, ``messages.routing``) is checked; what
        paylink builds itself, such as a provider's error text in an event, is not."""
        if info.mode == "json":
            _refuse_in(value)
        return value


class Role(StrEnum):
    """Portal roles that exist; only some may act (see domain.permissions)."""

    ADMIN = "Admin"
    SUPER_ADMIN = "Super Admin"
    DISPUTES = "Disputes"
    SETTLEMENT = "Settlement"
    EXTERNAL_USER = "External User"
    USER = "User"
    #: Roles the portal has that may not create or view orders (seed 000).
    DEVELOPER = "Developer"
    READ_ONLY = "Read Only"
    SUPPORT = "Support"


class Actor(WireModel):
    """Who issues a merchant command: the portal user, their role and the stores they hold."""

    user_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    role: Role
    store_ids: Annotated[list[ShortId], Field(min_length=1, max_length=1000)]


class Customer(WireModel):
    """The customer is reached by email or by SMS: at least one of the two is given.
    With both, the link goes by email and the phone is kept for a store's SMS fallback
    (``ConfigureStore.sms_fallback``) when the email bounces."""

    email: EmailStr | None = None
    phone: PhoneE164 | None = None
    name: Text255 | None = None

    @model_validator(mode="after")
    def _a_channel(self) -> Customer:
        if self.email is None and self.phone is None:
            raise ValueError("give customer.email or customer.phone")
        return self


class LineType(StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"
    DISCOUNT = "discount"
    SHIPPING_FEE = "shipping_fee"
    SALES_TAX = "sales_tax"
    GIFT_CARD = "gift_card"
    STORE_CREDIT = "store_credit"
    SURCHARGE = "surcharge"
    RETURN_FEE = "return_fee"


class OrderLineIn(WireModel):
    """One order line as Klarna defines it; totals are optional and checked when given."""

    name: Text255
    reference: Text255
    type: LineType = LineType.PHYSICAL
    quantity: Quantity
    unit_price: Amount
    tax_rate: TaxRate
    total_discount_amount: Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)] = 0
    total_amount: Amount | None = None
    total_tax_amount: Amount | None = None


class CommandBase(WireModel):
    """Fields every command carries. ``command_id`` is the idempotency key."""

    command_id: UUID
    issued_at: Timestamp


class MerchantCommand(CommandBase):
    actor: Actor


class EventBase(WireModel):
    """Fields every event carries. ``command_id`` names the command that caused it."""

    event_id: UUID
    type: str
    occurred_at: datetime
    command_id: UUID | None = None
    order_id: UUID | None = None
    store_id: str | None = None


Channel = Literal["email", "sms"]
