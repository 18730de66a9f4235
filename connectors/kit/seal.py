"""A secret kept where others can read it (the cursor store), sealed with a key derived from the account's password."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr


class Seal:
    """Seals and opens one account's secret: useless to whoever lacks the password, and dropped when it changes."""

    def __init__(self, password: SecretStr, salt: bytes, info: str) -> None:
        self._password, self._salt, self._info = password, salt, info.encode()
        # The last secret and its sealed form: sealing anew each time would rewrite an unchanged cursor.
        self._last: tuple[str, str] | None = None

    def _key(self) -> Fernet:
        derived = HKDF(algorithm=SHA256(), length=32, salt=self._salt, info=self._info).derive(
            self._password.get_secret_value().encode()
        )
        return Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        """The sealed form of `secret` (the same as last time while the secret has not changed)."""
        if self._last is None or self._last[0] != secret:
            self._last = (secret, self._key().encrypt(secret.encode()).decode())
        return self._last[1]

    def open(self, sealed: str) -> str | None:
        """The secret, or None when it was sealed with another password (or is no sealed text)."""
        try:
            return self._key().decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None

    def known(self, secret: str, sealed: str) -> None:
        """Remember that `sealed` is the sealed form of `secret` (read back from the store), so it is not sealed anew."""
        self._last = (secret, sealed)
