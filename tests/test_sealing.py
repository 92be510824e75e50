"""pichub.sealing: the server key, sealed values, signed states, and the key file."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from pichub.sealing import ServerKey, load_or_create

KEY = ServerKey(secrets.token_bytes(32))


def test_sealed_values_open_only_with_their_key_and_context() -> None:
    sealed = KEY.seal(b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "totp:1")
    assert b"JBSWY3DP".decode() not in sealed
    assert KEY.unseal(sealed, "totp:1") == b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert KEY.seal(b"same", "c") != KEY.seal(b"same", "c")  # a fresh nonce each time
    long = bytes(range(256)) * 3
    assert KEY.unseal(KEY.seal(long, "c"), "c") == long
    with pytest.raises(ValueError):
        KEY.unseal(sealed, "totp:2")  # moved to another user's row
    with pytest.raises(ValueError):
        ServerKey(secrets.token_bytes(32)).unseal(sealed, "totp:1")
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    for bad in (flipped, "s1.", "s1.AAAA", "nonsense"):
        with pytest.raises(ValueError):
            KEY.unseal(bad, "totp:1")


def test_signed_states_expire_and_resist_tampering() -> None:
    token = KEY.sign("pending", {"u": 7}, 60)
    assert KEY.verify("pending", token) is not None
    assert KEY.verify("pending", token)["u"] == 7  # type: ignore[index]
    assert KEY.verify("other", token) is None  # made for another purpose
    assert KEY.verify("pending", KEY.sign("pending", {"u": 7}, -1)) is None  # expired
    data, _, tag = token.partition(".")
    forged = KEY.sign("pending", {"u": 8}, 60).split(".")[0] + "." + tag
    for bad in (forged, data, data + ".", "", None, "x.y"):
        assert KEY.verify("pending", bad) is None


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create(path)
    assert again.mac("x", "y") == first.mac("x", "y")
    assert first.mac("x", "y") != first.mac("z", "y")  # one key per purpose
    with pytest.raises(ValueError):
        ServerKey(b"short")
