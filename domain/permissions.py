"""Who may issue which command: one table, tested row by row.

Seed 000: only Admin, Super Admin, Disputes, Settlement, External User and User may
create and view orders. The split of order-management commands between them is
paylink's decision (documented in docs/architecture.md): money-moving actions go to
the roles whose job they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from domain.errors import PermissionDenied, StoreAccessDenied
from messages.common import Actor, Role

R = Role
#: Seed 000: the six roles that may create and view orders.
ORDER_ROLES: frozenset[Role] = frozenset(
    {R.ADMIN, R.SUPER_ADMIN, R.DISPUTES, R.SETTLEMENT, R.EXTERNAL_USER, R.USER}
)
_OPERATORS = frozenset({R.ADMIN, R.SUPER_ADMIN, R.SETTLEMENT, R.USER})

#: Command type -> roles allowed to issue it. Commands absent here come from paylink or
#: the hosted checkout (no actor) and are not merchant-issued.
PERMISSIONS: Mapping[str, frozenset[Role]] = {
    "ConfigureStore": frozenset({R.ADMIN, R.SUPER_ADMIN}),
    "CreateOrder": ORDER_ROLES,
    "ResendPaymentLink": ORDER_ROLES,
    "CancelOrder": ORDER_ROLES,
    "CapturePayment": _OPERATORS | {R.EXTERNAL_USER},
    "ReleaseRemainingAuthorization": _OPERATORS,
    "RefundPayment": _OPERATORS | {R.DISPUTES},
    "AddReturnFee": _OPERATORS | {R.DISPUTES},
    "UpdateOrderLines": _OPERATORS,
    "UpdateCustomerDetails": _OPERATORS | {R.DISPUTES, R.EXTERNAL_USER},
    #: Privacy requests reach the store's administrators.
    "EraseCustomerData": frozenset({R.ADMIN, R.SUPER_ADMIN}),
}


def allowed_roles(command_type: str) -> frozenset[Role]:
    return PERMISSIONS.get(command_type, frozenset())


def authorize(actor: Actor, command_type: str, store_ids: Iterable[str]) -> None:
    """Refuse unless the actor's role may issue ``command_type`` on every store named."""
    if actor.role not in allowed_roles(command_type):
        raise PermissionDenied(
            f"role {actor.role.value!r} may not issue {command_type}; allowed: "
            + ", ".join(sorted(r.value for r in allowed_roles(command_type)))
        )
    held = set(actor.store_ids)
    for store_id in store_ids:
        if store_id not in held:
            raise StoreAccessDenied(f"user does not hold store {store_id!r}")
