"""The hosted link page: the order the link names, and paying it (Starlette, no script).

``GET /l/{token}`` shows the order in the customer's language, or the page of a dead
link. The first view of a live link publishes ``PaymentLinkOpened``; its command id
is derived from the link, so reloads (and views racing the worker) publish the same
command, which the workers apply once. ``POST /l/{token}/pay`` checks the form's CSRF
field, asks the checkout gateway, and on approval publishes ``CheckoutCompleted``
(command id derived from the link too) and redirects to ``/l/{token}/receipt``, which
shows the payment confirmed once the worker has applied it.

The page never writes to the database: the workers own every state change, and a
dead link is shown, never acted on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from babel import Locale
from prometheus_client import Counter
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from messages import commands as c
from messages.common import CommandBase
from workers.runtime import checkout_proof
from workers.web import pages
from workers.web.callback import CallbackVerifier
from workers.web.external_checkout import CheckoutCallbacks
from workers.web.gateway import (
    Approved,
    AuthorizationRequest,
    CheckoutGateway,
    ExternalGateway,
    GatewayUnavailable,
    Redirect,
)
from workers.web.hooks import DeliveryHooks
from workers.web.lookup import LinkState, LinkView, find_link
from workers.web.publisher import CommandPublisher, PublishFailed
from workers.web.security import AccessLog, CsrfSigner, RateLimiter, SecurityHeaders
from workers.web.wording import negotiate_locale

log = structlog.get_logger("paylink.web")

#: Served on the health port (:9303): what customers meet, and where paying fails.
LOOKUPS = Counter("paylink_web_lookups", "Link lookups by what was found.", ["state"])
PAYMENTS = Counter(
    "paylink_web_payments",
    "Pay form submissions by outcome (approved, declined, gateway_error, publish_failed, "
    "csrf_refused, redirected).",
    ["outcome"],
)
RATE_LIMITED = Counter("paylink_web_rate_limited", "Link requests refused by the rate limit.")

#: While the worker applies an approved payment, the receipt page reloads itself (no JS).
RECEIPT_REFRESH_SECONDS = 2
#: HTTP status of each dead-link page: gone for good, or never there.
DEAD_STATUS = {
    LinkState.EXPIRED: 410,
    LinkState.SUPERSEDED: 410,
    LinkState.CANCELLED: 410,
    LinkState.PAID: 200,
    LinkState.UNKNOWN: 404,
}


def opened_command_id(link_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(link_id, "payment-link-opened")


def completed_command_id(link_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(link_id, "checkout-completed")


class LinkPages:
    """The endpoints, with what they depend on handed in (tests give real pieces)."""

    def __init__(
        self,
        engine: Engine,
        publisher: CommandPublisher,
        gateway: CheckoutGateway,
        csrf: CsrfSigner,
        limiter: RateLimiter,
        now: Callable[[], datetime],
        proof_key: tuple[str, bytes] | None = None,
    ) -> None:
        self.engine, self.publisher, self.gateway = engine, publisher, gateway
        self.csrf, self.limiter, self.now = csrf, limiter, now
        #: The key CheckoutCompleted is signed with (``workers.runtime.checkout_proof``), if any.
        self.proof_key = proof_key

    # ---- endpoints ----------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        found = await self._live(request)
        if isinstance(found, Response):
            return found
        view, locale = found
        page = self._order_page(request, view, locale)
        # A HEAD is a link checker's probe (mail scanners), not the customer looking.
        if not view.opened and request.method == "GET":
            # After the page is sent: a slow or absent broker never delays the customer.
            page.background = BackgroundTask(
                self._publish_quietly,
                c.PaymentLinkOpened(
                    command_id=opened_command_id(_id(view.link_id)),
                    issued_at=self.now(),
                    token=request.path_params["token"],
                ),
            )
        return page

    async def pay(self, request: Request) -> Response:
        found = await self._live(request)
        if isinstance(found, Response):
            return found
        view, locale = found
        link_id = _id(view.link_id)
        form = await request.form()
        field = form.get("csrf")
        cookie = request.cookies.get(CsrfSigner.COOKIE)
        if not self.csrf.valid(cookie, link_id, field if isinstance(field, str) else None):
            w = pages.words(locale)
            PAYMENTS.labels("csrf_refused").inc()
            return self._order_page(request, view, locale, notice=w.form_expired, status=403)
        outcome = form.get("outcome")
        ask = AuthorizationRequest(
            idempotency_key=str(link_id),
            order_id=_id(view.order_id),
            amount=view.order_amount,
            currency=view.currency,
            reference=view.reference,
            method_data={"outcome": outcome} if isinstance(outcome, str) else {},
            session=request.path_params["token"],
            return_url=str(request.url_for("receipt", token=request.path_params["token"])),
        )
        w = pages.words(locale)
        try:
            answer = await run_in_threadpool(self.gateway.authorize, ask)
        except GatewayUnavailable:
            log.warning("checkout gateway unavailable", order_id=str(view.order_id))
            PAYMENTS.labels("gateway_error").inc()
            return self._order_page(request, view, locale, notice=w.gateway_error, status=503)
        if isinstance(answer, Redirect):  # an external checkout: its callback reports
            PAYMENTS.labels("redirected").inc()
            return RedirectResponse(answer.url, 303)
        if not isinstance(answer, Approved):
            log.info("payment declined", order_id=str(view.order_id))
            PAYMENTS.labels("declined").inc()
            return self._order_page(request, view, locale, notice=w.declined, status=402)
        command = c.CheckoutCompleted(
            command_id=completed_command_id(link_id),
            issued_at=self.now(),
            token=request.path_params["token"],
            authorization_id=answer.authorization_id,
            authorized_amount=view.order_amount,
            currency=view.currency,
            payment_method=answer.payment_method,
        )
        if self.proof_key is not None:  # workers that require proofs check it
            key_id, key = self.proof_key
            command = checkout_proof.sign(command, key_id, key, self.now())
        try:
            await run_in_threadpool(self.publisher.publish, command)
        except PublishFailed as exc:
            log.error("checkout not reported; the customer is asked to retry", error=str(exc))
            PAYMENTS.labels("publish_failed").inc()
            return self._message(locale, w.unavailable_title, w.unavailable, "unavailable", 503)
        PAYMENTS.labels("approved").inc()
        log.info(
            "payment approved", order_id=str(view.order_id), command_id=str(command.command_id)
        )
        receipt = request.url_for("receipt", token=request.path_params["token"])
        return RedirectResponse(receipt.path, 303)

    async def receipt(self, request: Request) -> Response:
        found = await self._lookup(request)
        if isinstance(found, Response):
            return found
        view, locale = found
        if view.state is LinkState.LIVE:
            w = pages.words(locale)
            if request.query_params.get("outcome") == "declined":  # back from a checkout
                return self._order_page(request, view, locale, notice=w.declined)
            return self._message(
                locale, w.paid_title, w.confirming, "confirming", 200, RECEIPT_REFRESH_SECONDS
            )
        return self._dead(view, locale)

    # ---- helpers ------------------------------------------------------------------

    async def _lookup(self, request: Request) -> tuple[LinkView, Locale] | Response:
        """The link and the page's locale; or the page saying why not (busy, down)."""
        fallback = negotiate_locale(request.headers.get("accept-language", ""))
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.allow(client)
        if wait is not None:
            RATE_LIMITED.inc()
            w = pages.words(fallback)
            response = self._message(fallback, w.busy_title, w.busy, "busy", 429)
            response.headers["retry-after"] = str(max(1, round(wait)))
            return response
        try:
            view = await run_in_threadpool(
                find_link, self.engine, request.path_params["token"], self.now()
            )
        except Exception as exc:  # the database is down: say so, never a stack trace
            log.error("link lookup failed", error=type(exc).__name__)
            w = pages.words(fallback)
            return self._message(fallback, w.unavailable_title, w.unavailable, "unavailable", 503)
        LOOKUPS.labels(view.state.value).inc()
        return view, pages.page_locale(view, fallback)

    async def _live(self, request: Request) -> tuple[LinkView, Locale] | Response:
        """A live link and its locale; or the page that says why it cannot be paid."""
        found = await self._lookup(request)
        if isinstance(found, Response) or found[0].state is LinkState.LIVE:
            return found
        return self._dead(*found)

    async def _publish_quietly(self, command: CommandBase) -> None:
        """Opening is reported at most once per view; a lost report is retried by the
        next view and never keeps the customer from paying."""
        try:
            await run_in_threadpool(self.publisher.publish, command)
        except PublishFailed as exc:
            log.warning("link opening not reported", error=str(exc))

    def _order_page(
        self,
        request: Request,
        view: LinkView,
        locale: Locale,
        *,
        notice: str | None = None,
        status: int = 200,
    ) -> Response:
        cookie = request.cookies.get(CsrfSigner.COOKIE) or CsrfSigner.new_cookie()
        body = pages.render(
            "order.html",
            **pages.order_context(view, locale),
            notice=notice,
            csrf=self.csrf.field(cookie, _id(view.link_id)),
            sandbox=self.gateway.sandbox,
            pay_action=request.url_for("pay", token=request.path_params["token"]).path,
        )
        response = HTMLResponse(body, status)
        response.set_cookie(
            CsrfSigner.COOKIE,
            cookie,
            path="/l/",
            httponly=True,
            # Lax: sent when the customer arrives from their mail (a cross-site GET), so
            # an open tab's form stays valid; never sent with another site's POST.
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    def _dead(self, view: LinkView, locale: Locale) -> Response:
        message = pages.dead_message(view, pages.words(locale))
        total = None
        if view.state is LinkState.PAID:
            total = str(pages.order_context(view, locale)["total"])
        return self._message(
            locale, message.title, message.text, view.state.value, DEAD_STATUS[view.state], 0, total
        )

    @staticmethod
    def _message(
        locale: Locale,
        title: str,
        text: str,
        state: str,
        status: int,
        refresh: int = 0,
        total: str | None = None,
    ) -> Response:
        body = pages.render(
            "message.html",
            w=pages.words(locale),
            title=title,
            text=text,
            state=state,
            refresh=refresh,
            total=total,
        )
        return HTMLResponse(body, status)


def _id(value: uuid.UUID | None) -> uuid.UUID:
    if value is None:
        raise ValueError("a found link has ids")
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    engine: Engine,
    publisher: CommandPublisher,
    gateway: CheckoutGateway,
    *,
    secret: bytes,
    rate_limit_per_minute: int,
    now: Callable[[], datetime] = utcnow,
    limiter: RateLimiter | None = None,
    proof_key: tuple[str, bytes] | None = None,
    callback_verifier: CallbackVerifier | None = None,
    hooks: DeliveryHooks | None = None,
) -> Starlette:
    callbacks = CheckoutCallbacks(
        engine,
        publisher,
        callback_verifier or CallbackVerifier({}),
        now,
        proof_key,
        completed_command_id,
    )
    form_origins = (gateway.origin,) if isinstance(gateway, ExternalGateway) else ()
    endpoints = LinkPages(
        engine,
        publisher,
        gateway,
        CsrfSigner(secret),
        limiter or RateLimiter(rate_limit_per_minute),
        now,
        proof_key,
    )
    routes = [
        Route("/l/{token}", endpoints.show, methods=["GET"], name="show"),
        Route("/l/{token}/pay", endpoints.pay, methods=["POST"], name="pay"),
        Route("/l/{token}/receipt", endpoints.receipt, methods=["GET"], name="receipt"),
        Route("/checkout/callback/{gateway}", callbacks.receive, methods=["POST"]),
        Mount("/static", StaticFiles(directory=pages.STATIC), name="static"),
        *(hooks.routes() if hooks is not None else ()),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLog),
            Middleware(SecurityHeaders, form_origins=form_origins),
        ],
        exception_handlers={Exception: _unexpected},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Anything unforeseen: a plain "try again" page, and the error's type in the log
    (its text might quote a query's parameters)."""
    log.error("unexpected error", error=type(exc).__name__)
    locale = negotiate_locale(request.headers.get("accept-language", ""))
    w = pages.words(locale)
    return LinkPages._message(locale, w.unavailable_title, w.unavailable, "unavailable", 503)
