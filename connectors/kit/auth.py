"""Authenticators: bearer tokens, fixed or renewed shortly before they expire; token endpoints; signed JWTs."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, Field, SecretStr, ValidationError

from inbox.connector import AuthError, Clock, PermanentError
from inbox.connectors.kit.http import Response, VendorClient
from inbox.connectors.kit.parse import first_problem

# A token is renewed this long before the vendor says it expires, so no request carries a dying one.
RENEW_MARGIN = 60.0

Renew = Callable[[], Awaitable[tuple[str, float]]]


class TokenAnswer(BaseModel):
    """An OAuth token endpoint's answer (Trustpilot sends expires_in as a string)."""

    access_token: str = Field(min_length=1)
    expires_in: float = 3600


def token_from(response: Response, what: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token endpoint's answer."""
    try:
        answer = TokenAnswer.model_validate(response.data)
    except ValidationError as exc:
        raise AuthError(f"{what} answered without a usable access_token: {first_problem(exc)}") from exc
    return answer.access_token, answer.expires_in


async def grant(
    client: VendorClient, url: str, form: Mapping[str, str], refused: str, *, headers: Mapping[str, str] | None = None
) -> tuple[str, float]:
    """(token, lifetime) from an OAuth token endpoint; its refusal is an AuthError that starts with `refused`."""
    try:
        response = await client.request("POST", url, data=dict(form), headers=headers)
    except PermanentError as exc:
        # 400 invalid_grant: a revoked refresh token, a changed password, a disabled account; an admin must act.
        raise AuthError(f"{refused}: {exc}") from exc
    if isinstance(response.data, dict) and "error" in response.data:
        # Some endpoints (Reddit's) refuse a grant with HTTP 200 and {"error": "invalid_grant"}.
        raise AuthError(f"{refused}: {response.data['error']}")
    return token_from(response, f"{client.name}: the token endpoint")


def password_grant(
    client: VendorClient,
    url: str,
    username: str,
    password: SecretStr,
    refused: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Renew:
    """Renewal by the OAuth password grant: a user's login traded for a token (Trustpilot, Reddit script apps)."""
    form = {"grant_type": "password", "username": username, "password": password.get_secret_value()}

    async def renewed() -> tuple[str, float]:
        return await grant(client, url, form, refused, headers=headers)

    return renewed


def self_signed(
    key: SecretStr,
    algorithm: str,
    claims: Mapping[str, Any],
    lifetime: int,
    clock: Clock,
    what: str,
    headers: dict[str, Any] | None = None,
) -> BearerToken:
    """A JWT we sign ourselves as the bearer token (App Store Connect's), signed again before it expires."""

    async def sign() -> tuple[str, float]:
        try:
            now = clock().timestamp()
            return signed_jwt(key.get_secret_value(), algorithm, claims, lifetime, now, headers), lifetime
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthError(f"cannot sign {what} with private_key: {exc}") from exc

    return BearerToken(renew=sign)


def bearer(token: SecretStr) -> dict[str, str]:
    """The `Authorization` header of a fixed bearer token."""
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def basic(user: str, password: SecretStr) -> str:
    """An `Authorization: Basic` value (OAuth client credentials)."""
    pair = f"{user}:{password.get_secret_value()}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def pem_private_key(value: str, hint: str) -> tuple[str, PrivateKeyTypes]:
    """(the PEM text, its key); a ValueError saying what to paste (`hint`) when the text holds no private key."""
    pem = value.replace("\\n", "\n").strip()  # secret stores often flatten a key file's newlines to "\n"
    try:
        return pem, load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not a PEM private key (paste {hint}, BEGIN and END lines included)") from exc


def signed_jwt(
    key: str,
    algorithm: str,
    claims: Mapping[str, Any],
    lifetime: int,
    now: float,
    headers: dict[str, Any] | None = None,
) -> str:
    """A JWT issued now and valid for `lifetime` seconds (a Google service account's assertion, App Store Connect's token)."""
    issued = int(now)
    return jwt.encode({**claims, "iat": issued, "exp": issued + lifetime}, key, algorithm=algorithm, headers=headers)


class BearerToken:
    """An `Authorization: Bearer` token: a fixed one, or one renewed shortly before it expires."""

    def __init__(
        self,
        fixed: SecretStr | None = None,
        renew: Renew | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        scheme: str = "Bearer",
    ) -> None:
        self._token = None if renew is not None or fixed is None else fixed.get_secret_value()
        self._renew = renew
        self.clock = clock
        self.scheme = scheme
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def value(self) -> str:
        """The token to send now, renewing it first when it is missing or about to expire."""
        if self._renew is None:
            if self._token is None:
                raise AuthError("no access token configured")
            return self._token
        async with self._lock:  # a poll and a reply at once must not both renew
            if self._token is None or self.clock() >= self._expires_at - RENEW_MARGIN:
                self._token = None
                token, lifetime = await self._renew()
                self._token, self._expires_at = token, self.clock() + lifetime
            return self._token

    async def request(
        self,
        client: VendorClient,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        renew_refused: bool = False,
    ) -> Response:
        """One request carrying the token; a refused token is dropped so the next call gets a fresh one.

        With `renew_refused`, a renewed token is asked for at once and tried once before the refusal is believed
        (a vendor that revokes tokens before they expire: Reddit).
        """
        headers = {"Authorization": f"{self.scheme} {await self.value()}"}
        try:
            return await client.request(method, path, params=params, json_body=json_body, data=data, headers=headers)
        except AuthError:
            if self._renew is None:
                raise
            self._token = None
            if not renew_refused:
                raise
        return await self.request(client, method, path, params=params, json_body=json_body, data=data)
