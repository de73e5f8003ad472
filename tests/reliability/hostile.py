"""Malformed and hostile messages, each with the outcome paylink owes it.

A message whose command names a parseable ``command_id`` is owed exactly one
``order.rejected`` with a code of the expected family. One without is owed a place in
its queue's ``.XQ`` with an ``x-paylink-reason`` starting with the expected code. So is
a message for an actor that does not exist, command id or not: nothing can say which
command it is (``messages.routing.parse_command``: ``UNKNOWN_COMMAND``).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from messages import commands as c
from messages.routing import BY_ACTOR, Queue
from workers.devtools.commands import ADMIN, STORE, create_order, merchant
from workers.devtools.harness import now

VALIDATION = frozenset({"VALIDATION_FAILED"})
HUGE = "x" * 1_000_000


@dataclass(frozen=True)
class Hostile:
    kind: str
    queue: str
    body: bytes
    #: command id owed a rejection, or None if owed a dead letter
    command_id: str | None
    #: rejection codes (with a command id) or dead-letter reason prefixes (without)
    expect: frozenset[str]
    #: how the dead letter is recognised: its message_id, or the raw body
    key: str


def _envelope(actor: str, args: Any, *, queue: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "queue_name": queue or BY_ACTOR[actor].queue_name,
        "actor_name": actor,
        "args": args,
        "kwargs": {},
        "options": {},
        "message_id": f"hostile-{uuid.uuid4()}",
        "message_timestamp": int(time.time() * 1000),
        **extra,
    }


def _command(cmd: c.CommandBase, **changes: Any) -> dict[str, Any]:
    data = cmd.model_dump(mode="json")
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


_DROP = object()
OTHER_STORE = {"user_id": "intruder", "role": "Admin", "store_ids": ["other-store"]}


class Generator:
    """Makes hostile messages; ``orders`` are live order ids to aim at."""

    def __init__(self, orders: list[uuid.UUID], seed: int = 7) -> None:
        self.orders = orders
        self.rng = random.Random(seed)
        self.huge_left = 20

    def _order(self) -> uuid.UUID:
        return self.rng.choice(self.orders)

    def _capture(self, **changes: Any) -> dict[str, Any]:
        return _command(merchant(c.CapturePayment, self._order(), amount=1_000), **changes)

    def reject(
        self,
        kind: str,
        actor: str,
        payload: dict[str, Any],
        codes: frozenset[str],
        *,
        args_extra: bool = False,
        **env: Any,
    ) -> Hostile:
        """A message owed a rejection; ``env`` spoils its envelope (queue, kwargs, options)."""
        envelope = _envelope(actor, [payload, 1] if args_extra else [payload], **env)
        body = json.dumps(envelope).encode()
        queue = BY_ACTOR[actor].queue_name  # where it is published, whatever it claims
        return Hostile(kind, queue, body, payload["command_id"], codes, envelope["message_id"])

    def dead(
        self, kind: str, queue: str, body: bytes | dict[str, Any], reasons: set[str]
    ) -> Hostile:
        if isinstance(body, dict):
            return Hostile(
                kind, queue, json.dumps(body).encode(), None, frozenset(reasons), body["message_id"]
            )
        return Hostile(kind, queue, body, None, frozenset(reasons), body.hex())

    # ---- the catalogue ---------------------------------------------------------------

    def kinds(self) -> list[Callable[[], Hostile]]:
        o = self._order
        cid = lambda: str(uuid.uuid4())  # noqa: E731
        create = lambda **kw: _command(create_order(), **kw)  # noqa: E731
        q_om = Queue.ORDER_MANAGEMENT
        return [
            # wrong types, per queue
            lambda: self.reject(
                "wrong_type", "capture_payment", self._capture(amount="lots"), VALIDATION
            ),
            lambda: self.reject(
                "wrong_type",
                "create_order",
                create(
                    order_lines=[
                        {
                            "name": "a",
                            "reference": "b",
                            "quantity": "2",
                            "unit_price": 1,
                            "tax_rate": 0,
                        }
                    ]
                ),
                VALIDATION,
            ),
            lambda: self.reject(
                "wrong_type",
                "checkout_completed",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "token": "t" * 43,
                    "authorization_id": "a",
                    "authorized_amount": "all",
                    "currency": "SEK",
                },
                VALIDATION,
            ),
            lambda: self.reject(
                "wrong_type",
                "configure_store",
                _command(
                    c.ConfigureStore(
                        command_id=uuid.uuid4(),
                        issued_at=now(),
                        actor=ADMIN,
                        store_id=STORE,
                        store_name="x",
                        terms_url="https://x.example/t",
                        agreement_currencies=["SEK"],
                    ),
                    agreement_currencies="SEK",
                ),
                VALIDATION,
            ),
            lambda: self.reject(
                "wrong_type",
                "send_payment_link",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "order_id": str(o()),
                    "link_id": 5,
                    "token": 7,
                },
                VALIDATION,
            ),
            lambda: self.reject(
                "wrong_type",
                "expire_payment_link",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "order_id": str(o()),
                    "link_id": "not-a-uuid",
                },
                VALIDATION,
            ),
            lambda: self.reject(
                "wrong_type",
                "payment_link_opened",
                {"command_id": cid(), "issued_at": "yesterday", "token": ["t"]},
                VALIDATION,
            ),
            # missing fields
            lambda: self.reject(
                "missing_fields", self.rng.choice(list(BY_ACTOR)), {"command_id": cid()}, VALIDATION
            ),
            lambda: self.reject(
                "missing_fields", "capture_payment", self._capture(actor=_DROP), VALIDATION
            ),
            # a megabyte of text
            self._huge,
            # roles that may not act, and roles that do not exist
            lambda: self.reject(
                "wrong_role",
                "create_order",
                create(actor={**ADMIN, "role": "Developer"}),
                frozenset({"ROLE_NOT_ALLOWED"}),
            ),
            lambda: self.reject(
                "wrong_role",
                "capture_payment",
                self._capture(actor={**ADMIN, "role": "Read Only"}),
                frozenset({"ROLE_NOT_ALLOWED"}),
            ),
            lambda: self.reject(
                "wrong_role",
                "configure_store",
                _command(
                    c.ConfigureStore(
                        command_id=uuid.uuid4(),
                        issued_at=now(),
                        actor={**ADMIN, "role": "User"},
                        store_id=STORE,
                        store_name="Evil",
                        terms_url="https://x.example/t",
                        agreement_currencies=["USD"],
                    )
                ),
                frozenset({"ROLE_NOT_ALLOWED"}),
            ),
            lambda: self.reject(
                "wrong_role",
                "refund_payment",
                _command(
                    merchant(c.RefundPayment, o(), amount=1), actor={**ADMIN, "role": "Hacker"}
                ),
                VALIDATION,
            ),
            # other stores' orders
            lambda: self.reject(
                "other_store",
                "create_order",
                create(actor=OTHER_STORE),
                frozenset({"STORE_ACCESS_DENIED"}),
            ),
            # another store's order is answered as an order that does not exist
            lambda: self.reject(
                "other_store",
                "capture_payment",
                self._capture(actor=OTHER_STORE),
                frozenset({"ORDER_NOT_FOUND"}),
            ),
            lambda: self.reject(
                "other_store",
                "cancel_order",
                _command(merchant(c.CancelOrder, o()), actor=OTHER_STORE),
                frozenset({"ORDER_NOT_FOUND"}),
            ),
            lambda: self.reject(
                "other_store",
                "update_customer_details",
                _command(merchant(c.UpdateCustomerDetails, o(), name="Mallory"), actor=OTHER_STORE),
                frozenset({"ORDER_NOT_FOUND"}),
            ),
            # amounts: negative, floats
            lambda: self.reject(
                "negative_amount", "capture_payment", self._capture(amount=-5_000), VALIDATION
            ),
            lambda: self.reject(
                "negative_amount",
                "refund_payment",
                _command(merchant(c.RefundPayment, o(), amount=1), amount=-1),
                VALIDATION,
            ),
            lambda: self.reject(
                "float_amount", "capture_payment", self._capture(amount=1000.5), VALIDATION
            ),
            lambda: self.reject(
                "float_amount",
                "create_order",
                create(
                    order_lines=[
                        {
                            "name": "a",
                            "reference": "b",
                            "quantity": 1,
                            "unit_price": 99.99,
                            "tax_rate": 2500,
                        }
                    ]
                ),
                VALIDATION,
            ),
            # extra fields
            lambda: self.reject(
                "extra_fields", "capture_payment", self._capture(is_admin=True), VALIDATION
            ),
            lambda: self.reject(
                "extra_fields", "create_order", create(discount_override=100), VALIDATION
            ),
            # forged or unknown targets
            lambda: self.reject(
                "unknown_order",
                "capture_payment",
                _command(merchant(c.CapturePayment, uuid.uuid4(), amount=1)),
                frozenset({"ORDER_NOT_FOUND"}),
            ),
            lambda: self.reject(
                "forged_token",
                "payment_link_opened",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "token": uuid.uuid4().hex + "abcdefghijk",
                },
                frozenset({"LINK_UNKNOWN"}),
            ),
            lambda: self.reject(
                "forged_link",
                "send_payment_link",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "order_id": str(o()),
                    "link_id": str(uuid.uuid4()),
                    "token": uuid.uuid4().hex + "abcdefghijk",
                },
                frozenset({"LINK_SUPERSEDED"}),
            ),
            lambda: self.reject(
                "forged_expiry",
                "expire_payment_link",
                {
                    "command_id": cid(),
                    "issued_at": now().isoformat(),
                    "order_id": str(o()),
                    "link_id": str(uuid.uuid4()),
                },
                frozenset({"LINK_SUPERSEDED"}),
            ),
            # NUL in text (no database stores it)
            lambda: self.reject(
                "nul_text", "create_order", create(merchant_reference1="PO\x001"), VALIDATION
            ),
            # bad envelopes around a command that names its id
            lambda: self.reject(
                "envelope_args", "capture_payment", self._capture(), VALIDATION, args_extra=True
            ),
            lambda: self.reject(
                "envelope_kwargs",
                "capture_payment",
                self._capture(),
                VALIDATION,
                kwargs={"amount": 1},
            ),
            lambda: self.reject(
                "envelope_options",
                "capture_payment",
                self._capture(),
                VALIDATION,
                options={"on_success": "refund_payment", "eta": 9e15},
            ),
            lambda: self.reject(
                "envelope_queue",
                "capture_payment",
                self._capture(),
                VALIDATION,
                queue=Queue.CHECKOUT,
            ),
            # nothing to reject by: dead letters
            lambda: self.dead(
                "invalid_json",
                self._queue(),
                b'{"actor_name": "create_order", args: [' + uuid.uuid4().bytes.hex().encode(),
                {"MALFORMED_MESSAGE"},
            ),
            lambda: self.dead(
                "binary",
                self._queue(),
                bytes(self.rng.getrandbits(8) for _ in range(64)),
                {"MALFORMED_MESSAGE"},
            ),
            lambda: self.dead(
                "not_an_object",
                self._queue(),
                f"[{self.rng.random()}, null]".encode(),
                {"MALFORMED_MESSAGE"},
            ),
            lambda: self.dead(
                "unknown_actor",
                q_om,
                _envelope("drop_all_orders", [{"command_id": cid()}], queue=q_om),
                {"UNKNOWN_COMMAND"},
            ),
            lambda: self.dead(
                "no_command_id",
                q_om,
                _envelope("capture_payment", [self._capture(command_id=_DROP)]),
                {"VALIDATION_FAILED"},
            ),
            lambda: self.dead(
                "bad_command_id",
                Queue.CREATE_ORDER,
                _envelope("create_order", [create(command_id="1234")]),
                {"VALIDATION_FAILED"},
            ),
            lambda: self.dead(
                "args_not_a_list",
                Queue.CHECKOUT,
                _envelope("payment_link_opened", "abc"),
                {"NOT_A_MESSAGE"},
            ),
            lambda: self.dead(
                "no_queue_name",
                Queue.SEND_LINK,
                {
                    k: v
                    for k, v in _envelope("send_payment_link", [{}]).items()
                    if k != "queue_name"
                },
                {"MALFORMED_MESSAGE"},
            ),
        ]

    def _queue(self) -> str:
        return self.rng.choice([r.queue_name for r in BY_ACTOR.values()])

    def _huge(self) -> Hostile:
        if self.huge_left <= 0:
            return self.reject(
                "wrong_type", "capture_payment", self._capture(amount=[1]), VALIDATION
            )
        self.huge_left -= 1
        return self.reject(
            "huge_string",
            "create_order",
            _command(create_order(), merchant_reference1=HUGE),
            VALIDATION,
        )

    def messages(self, n: int) -> Iterator[Hostile]:
        kinds = self.kinds()
        for i in range(n):
            yield kinds[i % len(kinds)]()
