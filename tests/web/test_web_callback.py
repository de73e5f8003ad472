"""An external checkout's callback is believed only when signed, fresh and new."""

from __future__ import annotations

import json

import pytest

from workers.web.callback import (
    REPLAY_WINDOW_SECONDS,
    CallbackRefused,
    CallbackVerifier,
    sign,
)

SECRET = b"gateway-secret-one"
ROTATED = b"gateway-secret-two"
NOW = 1_795_262_400
BODY = json.dumps(
    {"session": "ses_1", "status": "authorized", "authorization_id": "auth-1", "amount": 105000}
).encode()


def verifier(clock: list[float]) -> CallbackVerifier:
    return CallbackVerifier({"acme": [SECRET, ROTATED]}, clock=lambda: clock[0])


def test_a_signed_fresh_callback_is_accepted_once() -> None:
    # Given a callback the gateway signed just now
    clock = [float(NOW)]
    check = verifier(clock)
    signature = sign(SECRET, NOW, BODY)

    # When it arrives, and then arrives again (a replay)
    check.verify("acme", str(NOW), signature, BODY)
    with pytest.raises(CallbackRefused) as replay:
        check.verify("acme", str(NOW), signature, BODY)

    # Then the first is believed, the replay is refused
    assert replay.value.code == "REPLAYED"


def test_a_callback_signed_with_the_rotated_secret_is_accepted() -> None:
    # Given a gateway that moved to its new secret and sends both signatures
    check = verifier([float(NOW)])
    header = f"{sign(b'retired', NOW, BODY)},{sign(ROTATED, NOW, BODY)}"

    # When its callback arrives
    check.verify("acme", str(NOW), header, BODY)

    # Then it is believed (no exception)


@pytest.mark.parametrize(
    ("gateway", "timestamp", "signature", "body", "code"),
    [
        ("acme", str(NOW), sign(SECRET, NOW, BODY), BODY + b" ", "SIGNATURE_INVALID"),
        ("acme", str(NOW), sign(b"guess", NOW, BODY), BODY, "SIGNATURE_INVALID"),
        ("acme", str(NOW), "v0=" + sign(SECRET, NOW, BODY)[3:], BODY, "SIGNATURE_INVALID"),
        ("acme", str(NOW), None, BODY, "SIGNATURE_MISSING"),
        ("acme", None, sign(SECRET, NOW, BODY), BODY, "SIGNATURE_MISSING"),
        ("acme", "yesterday", sign(SECRET, NOW, BODY), BODY, "TIMESTAMP_INVALID"),
        ("other", str(NOW), sign(SECRET, NOW, BODY), BODY, "GATEWAY_UNKNOWN"),
        (
            "acme",
            str(NOW + 1),
            sign(SECRET, NOW, BODY),
            BODY,
            "SIGNATURE_INVALID",
        ),
    ],
    ids=[
        "body-changed",
        "wrong-secret",
        "unknown-scheme",
        "no-signature",
        "no-timestamp",
        "bad-timestamp",
        "unknown-gateway",
        "timestamp-changed",
    ],
)
def test_a_forged_or_incomplete_callback_is_refused(
    gateway: str, timestamp: str | None, signature: str | None, body: bytes, code: str
) -> None:
    # Given the verifier at the callback's time
    check = verifier([float(NOW)])

    # When the callback arrives, Then it is refused with its code
    with pytest.raises(CallbackRefused) as refused:
        check.verify(gateway, timestamp, signature, body)
    assert refused.value.code == code


@pytest.mark.parametrize("skew", [REPLAY_WINDOW_SECONDS + 1, -(REPLAY_WINDOW_SECONDS + 1)])
def test_a_callback_outside_the_window_is_refused_even_if_signed(skew: int) -> None:
    # Given a correctly signed callback, older (or newer) than the window
    check = verifier([float(NOW + skew)])

    # When it arrives, Then it is refused
    with pytest.raises(CallbackRefused) as refused:
        check.verify("acme", str(NOW), sign(SECRET, NOW, BODY), BODY)
    assert refused.value.code == "TIMESTAMP_OUTSIDE_WINDOW"


def test_a_callback_at_the_edge_of_the_window_is_accepted() -> None:
    # Given a signed callback exactly one window old
    check = verifier([float(NOW + REPLAY_WINDOW_SECONDS)])

    # When it arrives, Then it is believed
    check.verify("acme", str(NOW), sign(SECRET, NOW, BODY), BODY)
