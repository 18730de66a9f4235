"""Google OAuth for the two Google connectors (`google_reviews`, `google_play`): credentials and token renewal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, model_validator

from inbox.connector import Clock
from inbox.connectors.kit.auth import BearerToken, grant, pem_private_key, signed_jwt
from inbox.connectors.kit.http import VendorClient
from inbox.connectors.kit.parse import problem
from inbox.connectors.kit.reviews import ReviewConnector, ReviewSettings

TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # Google's maximum for a service account's assertion


class _SecondsNanos(BaseModel):
    seconds: int = Field(ge=0, le=253_402_300_799)  # a string on the wire (int64 in JSON); at most 9999-12-31
    nanos: int = 0


def _seconds_nanos(value: Any) -> datetime:
    try:
        stamp = _SecondsNanos.model_validate(value)
    except ValidationError as exc:
        raise ValueError(problem(exc)) from None
    return datetime.fromtimestamp(stamp.seconds, UTC) + timedelta(microseconds=stamp.nanos // 1000)


# A protobuf Timestamp as some Google APIs send it, `{"seconds": "1443676826", "nanos": 713000000}`, in UTC.
SecondsNanos = Annotated[datetime, BeforeValidator(_seconds_nanos)]


class ServiceAccountKey(BaseModel):
    """The fields of a service account's JSON key file that the token exchange needs."""

    client_email: str
    private_key: str
    private_key_id: str | None = None


class GoogleSettings(ReviewSettings):
    """Google OAuth2, one of: a fixed `access_token`; `client_id` + `client_secret` + `refresh_token`; `service_account_key`."""

    access_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None
    service_account_key: SecretStr | None = None  # the JSON key file's content
    token_url: str = TOKEN_URL

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        refresh = (self.client_id, self.client_secret, self.refresh_token)
        if any(refresh) and not all(refresh):
            raise ValueError("client_id, client_secret and refresh_token go together (all three, to refresh the token)")
        ways = [self.access_token is not None, all(refresh), self.service_account_key is not None]
        if sum(ways) != 1:
            raise ValueError(
                "set one of: access_token; client_id, client_secret and refresh_token; service_account_key"
            )
        if self.service_account_key is not None:
            service_account(self.service_account_key)
        return self


GS = TypeVar("GS", bound=GoogleSettings)
M = TypeVar("M", bound=BaseModel)


class GoogleConnector(ReviewConnector[GS, M], Generic[GS, M]):
    """A Google review API: Google OAuth with the API's `scope`; a subclass declares the rest of a review site."""

    scope: ClassVar[str]

    def authenticate(self, settings: GS) -> BearerToken:
        """Google OAuth with the API's scope."""
        return google_token(settings, self.client, self.scope, self.clock)


def service_account(value: SecretStr) -> ServiceAccountKey:
    """The parsed key file; a ValueError says what is wrong with it (for the config check)."""
    try:
        key = ServiceAccountKey.model_validate(json.loads(value.get_secret_value()))
        pem, private = pem_private_key(key.private_key, "the key file")
    except (ValueError, TypeError, ValidationError) as exc:
        raise ValueError("service_account_key must be the content of a service account's JSON key file") from exc
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("service_account_key's private_key must be an RSA key")
    return key.model_copy(update={"private_key": pem})


def google_token(settings: GoogleSettings, client: VendorClient, scope: str, clock: Clock) -> BearerToken:
    """The connector's bearer token: fixed, or renewed before each hourly expiry from a refresh token or service account."""
    if settings.client_id and settings.client_secret and settings.refresh_token:
        refresh = {
            "grant_type": "refresh_token",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.get_secret_value(),
            "refresh_token": settings.refresh_token.get_secret_value(),
        }

        async def refreshed() -> tuple[str, float]:
            return await _grant(client, settings.token_url, refresh)

        return BearerToken(renew=refreshed)
    if settings.service_account_key is not None:
        key = service_account(settings.service_account_key)

        async def assertion() -> tuple[str, float]:
            claims = {"iss": key.client_email, "scope": scope, "aud": settings.token_url}
            headers = {"kid": key.private_key_id} if key.private_key_id else None
            signed = signed_jwt(key.private_key, "RS256", claims, ASSERTION_LIFETIME, clock().timestamp(), headers)
            return await _grant(client, settings.token_url, {"grant_type": JWT_BEARER, "assertion": signed})

        return BearerToken(renew=assertion)
    return BearerToken(settings.access_token)


async def _grant(client: VendorClient, token_url: str, form: dict[str, str]) -> tuple[str, float]:
    # invalid_grant: a revoked refresh token or a disabled service account.
    return await grant(client, token_url, form, "Google token refresh refused")
