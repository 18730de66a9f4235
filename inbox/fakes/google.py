"""What the two Google fakes share: OAuth2 token endpoint, bearer tokens, Google's JSON error body."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from inbox.fakes.reviews import ReviewFake
from inbox.fakes.vendor import Fault

ACCESS_TOKEN = "ya29.fake-access-token"
CLIENT_ID = "1234-fake.apps.googleusercontent.com"
CLIENT_SECRET = "fake-client-secret"
REFRESH_TOKEN = "1//fake-refresh-token"
TOKEN_PATH = "/token"
SERVICE_ACCOUNT = "inbox@acme-project.iam.gserviceaccount.com"

# Google's error model (https://cloud.google.com/apis/design/errors): {"error": {code, message, status}}.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def google_error(status: int, message: str) -> dict[str, Any]:
    """Google's JSON error body."""
    return {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}


class GoogleFake(ReviewFake):
    """A Google API fake that also plays oauth2.googleapis.com/token for the refresh-token grant."""

    # The OAuth scope a service account's assertion must ask for.
    scope: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.service_account_public_key: rsa.RSAPublicKey | None = None  # set by tests that use a service account
        self.access_tokens = {ACCESS_TOKEN}
        self.token_lifetime = 3599
        self.token_grants = 0
        self.refresh_token = REFRESH_TOKEN

    @property
    def token_url(self) -> str:
        """Where the connector's `token_url` should point."""
        return self.base_url + TOKEN_PATH

    def add_token_route(self, app: web.Application) -> None:
        """The token endpoint (refresh_token grant, form-encoded)."""
        app.router.add_post(TOKEN_PATH, self.token)

    async def token(self, request: web.Request) -> web.Response:
        """Exchange a refresh token or a service account's signed assertion for an access token, as Google's endpoint does."""
        form = await request.post()
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            if not self.valid_assertion(str(form.get("assertion", ""))):
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
                )
            return self.grant()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client", "error_description": "Unauthorized"}, status=401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, status=400
            )
        return self.grant()

    def valid_assertion(self, assertion: str) -> bool:
        """A service account's JWT (RS256, iss, aud = the token URL, scope, at most an hour)."""
        if self.service_account_public_key is None:
            return False
        try:
            claims = jwt.decode(
                assertion,
                self.service_account_public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=SERVICE_ACCOUNT,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            return False
        return claims.get("scope") == self.scope and claims["exp"] - claims["iat"] <= 3600

    def grant(self) -> web.Response:
        """A new access token."""
        self.token_grants += 1
        token = f"ya29.refreshed-{self.token_grants}"
        self.access_tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer", "scope": self.scope}
        )

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries a token this fake issued."""
        return self.bearer(request) in self.access_tokens

    def error(self, status: int, message: str, code: str = "") -> web.Response:
        """Google's error answer."""
        return web.json_response(google_error(status, message), status=status)

    # Each API's own wording for a missing review.
    not_found: ClassVar[str] = "Requested entity was not found."

    def review_or_error(self, request: web.Request) -> Any:
        """The review the path names, or Google's 401/404 answer."""
        if not self.authorized(request):
            return self.error(401, "Request had invalid authentication credentials.")
        review = self.reviews.get(request.match_info["review_id"])
        return self.error(404, self.not_found) if review is None else review

    async def get_review(self, request: web.Request) -> web.Response:
        """reviews.get."""
        review = self.review_or_error(request)
        if isinstance(review, web.Response):
            return review
        return web.json_response(self.render(review))

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """429 RESOURCE_EXHAUSTED; the wait comes in Retry-After."""
        body = google_error(429, "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute'.")
        return Fault(429, {"Retry-After": str(int(reset_in))}, json.dumps(body))

    def fault_unauthorized(self) -> Fault:
        """401 UNAUTHENTICATED."""
        return Fault(401, {}, json.dumps(google_error(401, UNAUTHENTICATED)))
