"""`paylink web`: the link page served by uvicorn, with paylink's logging and health port.

uvicorn's own access log is off (it writes the raw path, and the path holds the
token); ``workers.web.security.AccessLog`` writes the route instead. Probes and
Prometheus use the health port, never the customer-facing one.
"""

from __future__ import annotations

import secrets

import uvicorn
from sqlalchemy import text

from workers.observability.health import start_health_server
from workers.observability.logs import configure_logging
from workers.settings import Settings
from workers.storage.engine import make_engine
from workers.web.app import create_app, utcnow
from workers.web.callback import CallbackVerifier
from workers.web.gateway import build_gateway
from workers.web.hooks import DeliveryHooks
from workers.web.publisher import BrokerPublisher


def run_web(settings: Settings, *, health_port: int) -> None:
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    publisher = BrokerPublisher(settings.broker_url)
    secret = (
        settings.web_secret.get_secret_value().encode()
        if settings.web_secret is not None
        else secrets.token_bytes(32)
    )
    twilio_secrets = (settings.twilio_webhook_secret, settings.twilio_auth_token)
    app = create_app(
        engine,
        publisher,
        build_gateway(settings.checkout_gateway, settings.external_checkout_url),
        secret=secret,
        rate_limit_per_minute=settings.web_rate_limit_per_minute,
        proof_key=next(iter(settings.checkout_proof_key_map.items()), None),
        callback_verifier=CallbackVerifier(settings.checkout_callback_secret_map),
        hooks=DeliveryHooks(
            publisher,
            utcnow,
            sendgrid_public_key=settings.sendgrid_webhook_public_key,
            twilio_secret=next(
                (s.get_secret_value() for s in twilio_secrets if s is not None), None
            ),
            public_url=settings.web_public_url,
        ),
    )

    def ready() -> bool:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True

    start_health_server(health_port, ready)
    try:
        uvicorn.run(
            app,
            host=settings.web_host,
            port=settings.web_port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            forwarded_allow_ips=settings.web_forwarded_allow_ips,
            server_header=False,
        )
    finally:
        publisher.close()
        engine.dispose()
