"""Tokens: 256 bits from ``secrets``, URL-safe; stores see only a hash (issue 2, behaviour 1)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest

from sessionkeeper.core import ids

TOKEN = ids.new_token()


def test_token_shape_and_entropy() -> None:
    token = ids.new_token()
    assert len(token) == ids.TOKEN_LENGTH == 43
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(base64.urlsafe_b64decode(token + "=")) == 32  # 256 bits
    assert ids.is_valid_token(token)


def test_tokens_come_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int | None] = []
    real = secrets.token_urlsafe

    def spy(nbytes: int | None = None) -> str:
        calls.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(ids.secrets, "token_urlsafe", spy)
    ids.new_token()
    assert calls == [32]


def test_tokens_do_not_repeat() -> None:
    assert len({ids.new_token() for _ in range(2000)}) == 2000


def test_every_issued_token_is_valid() -> None:
    # The last character carries 4 zero padding bits; the validator must accept all of them.
    assert all(ids.is_valid_token(ids.new_token()) for _ in range(2000))


def test_storage_key_is_sha256_and_hides_the_token() -> None:
    key = ids.storage_key(TOKEN)
    assert key == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert ids.is_valid_key(key)
    assert TOKEN not in key
    assert ids.storage_key(TOKEN) == key  # deterministic: lookups compare hashes
    assert ids.storage_key(ids.new_token()) != key


@pytest.mark.parametrize(
    "value",
    [
        "",
        TOKEN[:-1],
        TOKEN + "A",
        TOKEN[:-1] + "B",  # non-zero padding bits: never issued
        TOKEN[:-1] + "=",
        "+" + TOKEN[1:],
        "/" + TOKEN[1:],
        "é" + TOKEN[1:],
        TOKEN[:20] + "\x00" + TOKEN[21:],
        "../" * 14 + "A",
        ("' OR '1'='1' --" * 3)[:42] + "A",
        " " + TOKEN[1:],
        TOKEN[:-1] + "\n",
        "A" * 5000,
    ],
)
def test_malformed_tokens_are_rejected(value: str) -> None:
    assert not ids.is_valid_token(value)


@pytest.mark.parametrize(
    "value",
    ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61, "0" * 63 + "\n"],
)
def test_malformed_keys_are_rejected(value: str) -> None:
    assert not ids.is_valid_key(value)


def test_public_id_is_keyed_and_short() -> None:
    key = ids.storage_key(TOKEN)
    a = ids.public_id(key, b"secret-a")
    assert a == ids.public_id(key, b"secret-a")
    assert a != ids.public_id(key, b"secret-b")
    assert len(a) == 16 and a not in key
