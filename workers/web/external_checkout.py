"""An external checkout's callback: a verified result becomes ``CheckoutCompleted``.

``POST /checkout/callback/{gateway}`` (the contract is in README, "The customer's
side"). Nothing in a callback is believed before ``workers.web.callback`` has checked
its signature, timestamp and novelty: a refused one is answered 403 and nothing is
published. An authorized result for a live link is published as the same
``CheckoutCompleted`` the sandbox path publishes (command id derived from the link,
signed with the checkout proof key), so a replay that reaches another replica is the
same command and has no second effect. A declined result changes nothing: the
customer, sent back to the receipt page with ``?outcome=declined``, sees the order
with the decline and may pay again.

Like the page, this endpoint never writes to the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import structlog
from prometheus_client import Counter
from pydantic import ConfigDict, ValidationError, model_validator
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from messages import commands as c
from messages.common import Currency, PositiveAmount, ShortId, WireModel
from workers.runtime import checkout_proof
from workers.web.callback import CallbackRefused, CallbackVerifier
from workers.web.lookup import LinkState, find_link
from workers.web.publisher import CommandPublisher, PublishFailed

log = structlog.get_logger("paylink.web")

CALLBACKS = Counter(
    "paylink_web_checkout_callbacks",
    "External checkout callbacks by outcome (accepted, declined, refused, invalid, "
    "link_not_live, amount_mismatch, publish_failed).",
    ["outcome"],
)
#: A result is a few hundred bytes; anything much larger is not a gateway's callback.
MAX_BODY_BYTES = 16 * 1024


class CallbackResult(WireModel):
    """What a gateway POSTs back (JSON). ``session`` is what paylink sent it in the
    redirect: the link's token, to be kept as secret as the link itself."""

    # Gateways add their own fields; only these are read.
    model_config = ConfigDict(extra="ignore")

    session: c.LinkToken
    status: Literal["authorized", "declined"]
    authorization_id: ShortId | None = None
    amount: PositiveAmount
    currency: Currency
    payment_method: ShortId | None = None

    @model_validator(mode="after")
    def _authorized_has_an_id(self) -> CallbackResult:
        if self.status == "authorized" and self.authorization_id is None:
            raise ValueError("an authorized result carries its authorization_id")
        return self


class CheckoutCallbacks:
    """The callback endpoint, with what it depends on handed in (tests give real pieces)."""

    def __init__(
        self,
        engine: Engine,
        publisher: CommandPublisher,
        verifier: CallbackVerifier,
        now: Callable[[], datetime],
        proof_key: tuple[str, bytes] | None,
        completed_command_id: Callable[[uuid.UUID], uuid.UUID],
    ) -> None:
        self.engine, self.publisher, self.verifier, self.now = engine, publisher, verifier, now
        self.proof_key = proof_key
        self.completed_command_id = completed_command_id

    async def receive(self, request: Request) -> Response:
        gateway = request.path_params["gateway"]
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            return _answer("invalid", 413, error="BODY_TOO_LARGE")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _answer("invalid", 413, error="BODY_TOO_LARGE")
        try:
            self.verifier.verify(
                gateway,
                request.headers.get("paylink-timestamp"),
                request.headers.get("paylink-signature"),
                body,
            )
        except CallbackRefused as refused:
            log.warning("checkout callback refused", gateway=gateway[:32], code=refused.code)
            return _answer("refused", 403, error=refused.code)
        try:
            result = CallbackResult.model_validate_json(body)
        except ValidationError:
            return _answer("invalid", 400, error="BODY_INVALID")
        return await self._apply(gateway, result)

    async def _apply(self, gateway: str, result: CallbackResult) -> Response:
        view = await run_in_threadpool(find_link, self.engine, result.session, self.now())
        order_id = str(view.order_id) if view.order_id else None
        if result.status == "declined":
            log.info("external checkout declined", gateway=gateway, order_id=order_id)
            return _answer("declined", 200, status="declined")
        if view.state is not LinkState.LIVE or view.link_id is None:
            # Paid already (an earlier callback), or dead: the gateway is to void it.
            log.warning("checkout callback for a link not live", state=view.state.value)
            return _answer("link_not_live", 409, error=f"LINK_{view.state.value.upper()}")
        if (result.amount, str(result.currency)) != (view.order_amount, view.currency):
            log.warning("checkout callback amount differs from the order", order_id=order_id)
            return _answer("amount_mismatch", 409, error="AMOUNT_MISMATCH")
        command = c.CheckoutCompleted(
            command_id=self.completed_command_id(view.link_id),
            issued_at=self.now(),
            token=result.session,
            authorization_id=str(result.authorization_id),
            authorized_amount=result.amount,
            currency=result.currency,
            payment_method=result.payment_method or gateway,
        )
        if self.proof_key is not None:
            command = checkout_proof.sign(command, *self.proof_key, self.now())
        try:
            await run_in_threadpool(self.publisher.publish, command)
        except PublishFailed as exc:
            log.error("external checkout not reported; the gateway retries", error=str(exc))
            return _answer("publish_failed", 503, error="UNAVAILABLE")
        log.info("external checkout accepted", gateway=gateway, order_id=order_id)
        return _answer("accepted", 202, status="accepted")


def _answer(outcome: str, http_status: int, **content: str) -> Response:
    CALLBACKS.labels(outcome).inc()
    return JSONResponse(content, http_status)
