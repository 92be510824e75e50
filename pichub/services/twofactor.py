"""Two-factor sign-in for the web UI: TOTP (RFC 6238) with one-time recovery codes.

Codes are the common authenticator-app kind: SHA-1, 6 digits, 30-second steps,
and the step before and after are accepted too (clock drift). A code is good
once: the last accepted step is stored per user and only a later one passes,
so a code seen over a shoulder or replayed from a log is refused (the update
is conditional, so two requests racing with one code cannot both win).

The TOTP secret is stored sealed with the server key (`pichub.sealing`), bound
to its user; recovery codes (10, 50 random bits each, shown once) are stored
as HMACs under the server key, compared in constant time, and each works once.

Between the password and the code a browser holds only a signed, five-minute
"pending sign-in" (`pending`/`read_pending`): not a session, and dead as soon
as the password changes. Rate limits on codes are the web layer's (`two_factor`
bucket); API tokens never meet any of this.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp

from pichub.db import totp as totp_db
from pichub.db import users as users_db
from pichub.db.database import Database
from pichub.errors import ValidationError
from pichub.hashing import verify_password
from pichub.sealing import ServerKey

STEP_S = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODES = 10
PENDING_S = 300
ISSUER = "PicHub"
_RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols, no l/o/0/1
_RECOVERY_LEN = 10
_SEPARATORS = re.compile(r"[\s-]+")


@dataclass(frozen=True)
class Enrolment:
    """A secret being set up: what the authenticator app needs (shown until confirmed)."""

    secret: str  # base32, as apps accept it typed in
    uri: str  # otpauth://totp/…, the content of the QR code


@dataclass(frozen=True)
class Status:
    enabled: bool
    recovery_codes_left: int
    enrolment: Enrolment | None  # set while a secret awaits its first code


@dataclass(frozen=True)
class Pending:
    """A browser that gave the right password and now owes a code."""

    user_id: int
    next: str


def field_error(field: str, message: str) -> ValidationError:
    """A 422 whose message reads well on its own (shown as is on the account page)."""
    return ValidationError(message, [{"field": field, "message": message}])


def _wrong_code() -> ValidationError:
    return field_error("code", "That code is not right (or was used already).")


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LEN))
    return raw[:5] + "-" + raw[5:]


class TwoFactor:
    """TOTP enrolment and checks for one app; `clock` is injectable for tests of drift."""

    def __init__(self, db: Database, key: ServerKey,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._key = key
        self._clock = clock

    async def enabled(self, user_id: int) -> bool:
        row = await totp_db.get(self._db, user_id)
        return row is not None and row["confirmed_at"] is not None

    async def status(self, user_id: int, username: str) -> Status:
        row = await totp_db.get(self._db, user_id)
        if row is None:
            return Status(False, 0, None)
        if row["confirmed_at"] is not None:
            return Status(True, await totp_db.count_unused(self._db, user_id), None)
        return Status(False, 0, self._enrolment(self._secret(user_id, row["secret"]), username))

    async def begin(self, user_id: int, username: str) -> Enrolment:
        """A fresh secret awaiting confirmation (replaces an unconfirmed one)."""
        if await self.enabled(user_id):
            raise ValidationError("Two-factor sign-in is on already; turn it off first.")
        secret = pyotp.random_base32(32)  # 160 bits, RFC 4226's recommended length
        async with self._db.transaction() as conn:
            await totp_db.start(conn, user_id, self._key.seal(secret.encode(), _context(user_id)))
        return self._enrolment(secret, username)

    async def confirm(self, user_id: int, code: str) -> list[str]:
        """Turn it on with the first code from the app; returns the recovery codes (only now)."""
        row = await totp_db.get(self._db, user_id)
        if row is None or row["confirmed_at"] is not None:
            raise ValidationError("There is no two-factor set-up waiting for a code.")
        step = self._matching_step(self._secret(user_id, row["secret"]), _digits(code), 0)
        if step is None:
            raise _wrong_code()
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        async with self._db.transaction() as conn:
            if not await totp_db.confirm(conn, user_id, step,
                                         [self._code_hash(user_id, c) for c in codes]):
                raise ValidationError("There is no two-factor set-up waiting for a code.")
        return codes

    async def check(self, user_id: int, code: str) -> bool:
        """A current code from the app, or an unused recovery code; either is spent."""
        row = await totp_db.get(self._db, user_id)
        if row is None or row["confirmed_at"] is None:
            return False
        digits = _digits(code)
        if digits is not None:
            step = self._matching_step(self._secret(user_id, row["secret"]), digits,
                                       row["last_step"])
            if step is None:
                return False
            async with self._db.transaction() as conn:
                return await totp_db.use_step(conn, user_id, step)
        return await self._spend_recovery_code(user_id, code)

    async def disable(self, user_id: int, password: str, code: str) -> None:
        """Turn it off: needs the password and a code (or a recovery code)."""
        user = await users_db.get_user(self._db, user_id)
        stored = user["password_hash"] if user is not None else None
        if not await asyncio.to_thread(verify_password, password, stored):
            raise field_error("password", "That is not your password.")
        if not await self.check(user_id, code):
            raise _wrong_code()
        async with self._db.transaction() as conn:
            await totp_db.remove(conn, user_id)

    def pending(self, user_id: int, password_hash: str, next_path: str) -> str:
        """The signed half-signed-in state, for a cookie."""
        payload = {"u": user_id, "n": next_path, "p": self._password_mark(password_hash)}
        return self._key.sign("pending-sign-in", payload, PENDING_S)

    async def read_pending(self, token: str | None) -> Pending | None:
        """The pending sign-in of a cookie: signed by us, not expired, password unchanged."""
        payload = self._key.verify("pending-sign-in", token)
        if payload is None or not isinstance(payload.get("u"), int):
            return None
        user = await users_db.get_user(self._db, payload["u"])
        if user is None or not hmac.compare_digest(
                str(payload.get("p")), self._password_mark(user["password_hash"])):
            return None
        return Pending(user["id"], str(payload.get("n", "")))

    # --- helpers ---------------------------------------------------------------------------

    def _enrolment(self, secret: str, username: str) -> Enrolment:
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
            name=username, issuer_name=ISSUER)
        return Enrolment(secret, uri)

    def _secret(self, user_id: int, sealed: str) -> str:
        return self._key.unseal(sealed, _context(user_id)).decode()

    def _matching_step(self, secret: str, digits: str | None, after: int) -> int | None:
        """The step (later than `after`) within the drift window whose code is `digits`."""
        if digits is None:
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
        current = int(self._clock() // STEP_S)
        found = None
        for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
            # Every candidate is compared (no early exit), each in constant time.
            if hmac.compare_digest(totp.generate_otp(step), digits) and step > after:
                found = step
        return found

    async def _spend_recovery_code(self, user_id: int, code: str) -> bool:
        wanted = self._code_hash(user_id, code)
        match = None
        for row in await totp_db.unused_codes(self._db, user_id):
            if hmac.compare_digest(row["code_hash"], wanted):
                match = row["id"]
        if match is None:
            return False
        async with self._db.transaction() as conn:
            return await totp_db.use_code(conn, match)

    def _code_hash(self, user_id: int, code: str) -> str:
        normal = _SEPARATORS.sub("", code).lower()
        return self._key.mac("recovery-code", f"{user_id}:{normal}")

    def _password_mark(self, password_hash: str) -> str:
        return self._key.mac("pending-password", password_hash)[:32]


def _context(user_id: int) -> str:
    return f"totp:{user_id}"


def _digits(code: str) -> str | None:
    """A code typed as 6 digits (spaces allowed), else None (maybe a recovery code)."""
    compact = _SEPARATORS.sub("", code)
    return compact if len(compact) == DIGITS and compact.isascii() and compact.isdigit() else None
