"""Standard Webhooks signing, checked against the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pichub.webhooks import signing


def test_new_secret_is_whsec_base64_of_enough_random_bytes() -> None:
    secrets = {signing.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert 24 <= len(key) <= 32


def test_signature_matches_the_spec_example() -> None:
    # The worked example of the Standard Webhooks specification.
    signature = signing.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330, b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_verify_with_the_reference_library() -> None:
    secret = signing.new_secret()
    body = json.dumps({"id": "evt_abc", "type": "album.created", "data": {"name": "ü"}},
                      ensure_ascii=False).encode()
    headers = signing.headers(secret, "evt_abc", int(time.time()), body, "album.created")
    assert headers["webhook-id"] == "evt_abc"
    assert headers["X-PicHub-Event"] == "album.created"
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)


def test_tampered_body_or_other_secret_fails_verification() -> None:
    secret = signing.new_secret()
    body = b'{"id":"evt_1"}'
    headers = signing.headers(secret, "evt_1", int(time.time()), body, "ping")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"id":"evt_2"}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_unsigned_headers_when_there_is_no_secret() -> None:
    headers = signing.headers(None, "evt_1", 1700000000, b"{}", "image.deleted")
    assert "webhook-signature" not in headers
    assert headers["webhook-timestamp"] == "1700000000"


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        signing.sign("whsec_", "evt_1", 1, b"{}")
