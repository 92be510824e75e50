"""Standard Webhooks signing (https://www.standardwebhooks.com/).

A secret is `whsec_<base64 key>`; the signature is
`v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`. The key is decoded
exactly as the reference `standardwebhooks` library decodes it, so any secret a
receiver passes to that library verifies what we send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
USER_AGENT = "PicHub-Webhooks/1"


def new_secret() -> str:
    """A fresh endpoint secret: 32 random bytes, base64, with the `whsec_` prefix."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret; ValueError when it decodes to nothing."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Same decoding as the reference library: tolerant of missing padding.
    key = base64.b64decode(encoded + "==")
    if not key:
        raise ValueError("webhook secret decodes to an empty key")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str | None, msg_id: str, timestamp: int, body: bytes,
            event_type: str) -> dict[str, str]:
    """Request headers of one attempt; unsigned (no `webhook-signature`) when `secret` is None."""
    result = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "X-PicHub-Event": event_type,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    if secret is not None:
        result["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return result
