"""The server's own secret key, and what it protects: sealed values, signed states, MACs.

The key is `auth.secret_key` when configured, else 32 random bytes generated
once into `<data_dir>/secret.key` (mode 0600, copied by `pichub backup`). It
lives outside the database on purpose: a copy of `pichub.db` alone (a leaked
file, a stray snapshot) reads no two-factor secret and can test no recovery
code offline.

Each use gets its own key, derived from the root with HMAC-SHA256 and a
purpose label, so a value made for one purpose is never accepted for another.

- `seal`/`unseal`: the standard library has no AEAD and the project adds no
  crypto package for this, so sealing is encrypt-then-MAC built from HMAC-SHA256
  alone: a random 16-byte nonce, a keystream of HMAC(enc_key, nonce ‖ counter)
  blocks (HMAC as a PRF in counter mode) XORed with the plaintext, then a tag
  HMAC(mac_key, context ‖ nonce ‖ ciphertext) over everything, checked in
  constant time before anything is decrypted. The context (e.g. the user id)
  binds a sealed value to its row: copied to another row it does not open.
- `sign`/`verify`: a small JSON payload with an expiry, readable by the holder
  but not forgeable (the half-signed-in state between password and code).
- `mac`: a keyed hash of a short secret (recovery codes), so a stolen database
  gives nothing to brute-force offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

KEY_FILE = "secret.key"
_NONCE = 16
_TAG = 32
_VERSION = "s1."


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ServerKey:
    """The root secret of one PicHub instance; derives a key per purpose."""

    def __init__(self, root: bytes) -> None:
        if len(root) < 32:
            raise ValueError("the server key needs at least 32 bytes")
        self._root = root

    @classmethod
    def from_text(cls, text: str) -> ServerKey:
        return cls(text.encode())

    def derive(self, purpose: str) -> bytes:
        return hmac.new(self._root, b"pichub/" + purpose.encode(), hashlib.sha256).digest()

    def mac(self, purpose: str, message: str) -> str:
        """Hex HMAC-SHA256 of `message` under the key of `purpose`."""
        return hmac.new(self.derive(purpose), message.encode(), hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        body = _xor(plaintext, self._keystream(nonce, len(plaintext)))
        return _VERSION + _b64(nonce + body + self._tag(context, nonce, body))

    def unseal(self, sealed: str, context: str) -> bytes:
        """The plaintext; ValueError when the value was altered, moved or sealed by another key."""
        if not sealed.startswith(_VERSION):
            raise ValueError("not a sealed value")
        raw = _unb64(sealed.removeprefix(_VERSION))
        nonce, body, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
        if len(raw) < _NONCE + _TAG or not hmac.compare_digest(
                tag, self._tag(context, nonce, body)):
            raise ValueError("sealed value does not check out")
        return _xor(body, self._keystream(nonce, len(body)))

    def sign(self, purpose: str, payload: dict[str, Any], lifetime_s: float) -> str:
        """`payload` plus an expiry, as a URL-safe string only this key could have made."""
        data = _b64(json.dumps({**payload, "exp": time.time() + lifetime_s}).encode())
        return data + "." + self.mac("sign/" + purpose, data)

    def verify(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        """The payload of a live, untampered `sign` result of the same purpose, else None."""
        data, _, tag = (token or "").partition(".")
        if not data or not hmac.compare_digest(tag.encode(),
                                               self.mac("sign/" + purpose, data).encode()):
            return None
        try:
            payload = json.loads(_unb64(data))
        except ValueError:
            return None
        if not isinstance(payload, dict) or not payload.get("exp", 0) > time.time():
            return None
        return payload

    def _keystream(self, nonce: bytes, size: int) -> bytes:
        key = self.derive("seal/encrypt")
        blocks = (hmac.new(key, nonce + n.to_bytes(4, "big"), hashlib.sha256).digest()
                  for n in range(-(-size // 32)))
        return b"".join(blocks)[:size]

    def _tag(self, context: str, nonce: bytes, body: bytes) -> bytes:
        message = context.encode() + b"\0" + nonce + body
        return hmac.new(self.derive("seal/mac"), message, hashlib.sha256).digest()


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def load_or_create(path: Path) -> ServerKey:
    """The key in `path`, made first (32 random bytes, hex, mode 0600) when it is absent.
    Blocking file I/O: call it from a thread."""
    try:
        return ServerKey.from_text(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, secrets.token_hex(32) + "\n", replace=False)
    return ServerKey.from_text(path.read_text(encoding="ascii").strip())


def copy_key(src_dir: Path, dest_dir: Path) -> bool:
    """Copy the key file of one data directory to another (backup, restore), still 0600;
    False when `src_dir` has none (the key is then in the configuration)."""
    try:
        text = (src_dir / KEY_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    _write_private(dest_dir / KEY_FILE, text, replace=True)
    return True


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write `path` readable by its owner only, durably, all or nothing. Without `replace`, a
    file another process made meanwhile wins."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")  # one per writer: two
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # processes may start at once
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
