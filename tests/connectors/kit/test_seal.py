"""A secret sealed with a key derived from the password: opened with it, useless without it, sealed once."""

from __future__ import annotations

from pydantic import SecretStr

from inbox.connectors.kit.seal import Seal


def test_a_sealed_secret_opens_with_the_same_password_and_name_only():
    seal = Seal(SecretStr("pass-word"), b"salt", "acme")
    sealed = seal.seal("the session")
    assert "the session" not in sealed and seal.open(sealed) == "the session"
    assert Seal(SecretStr("pass-word"), b"salt", "acme").open(sealed) == "the session"  # after a restart
    assert Seal(SecretStr("new-password"), b"salt", "acme").open(sealed) is None
    assert Seal(SecretStr("pass-word"), b"salt", "other").open(sealed) is None
    assert seal.open("not sealed at all") is None


def test_an_unchanged_secret_keeps_its_sealed_form_so_the_cursor_is_not_rewritten():
    seal = Seal(SecretStr("pass-word"), b"salt", "acme")
    first = seal.seal("s1")
    assert seal.seal("s1") == first  # Fernet would give a new token each time
    assert seal.seal("s2") != first
    seal.known("s1", first)
    assert seal.seal("s1") == first
