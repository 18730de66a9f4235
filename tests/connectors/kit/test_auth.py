"""Token endpoints and self-signed tokens: a grant refused in any of the ways vendors refuse is an AuthError."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import SecretStr

from inbox.connector import AuthError
from inbox.connectors.kit.auth import BearerToken, grant, password_grant, self_signed
from inbox.connectors.kit.http import VendorClient


@pytest.fixture
async def token_endpoint() -> AsyncIterator[tuple[VendorClient, list[dict[str, str]]]]:
    """A token endpoint: user `ana` with password `right` gets a token; `bob` is refused with HTTP 200, others with 400."""
    forms: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        forms.append({k: str(v) for k, v in form.items()} | {"auth": request.headers.get("Authorization", "")})
        if form.get("username") == "bob":
            return web.json_response({"error": "invalid_grant"})
        if form.get("password") != "right":
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "t1", "expires_in": "7200"})

    app = web.Application()
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = VendorClient("acme", str(server.make_url("/")))
    yield client, forms
    await client.close()
    await server.close()


async def test_the_password_grant_trades_a_login_for_a_token_and_says_who_refused(token_endpoint):
    client, forms = token_endpoint
    renew = password_grant(client, "/token", "ana", SecretStr("right"), "acme refused", headers={"Authorization": "B"})
    assert await renew() == ("t1", 7200.0)
    assert forms == [{"grant_type": "password", "username": "ana", "password": "right", "auth": "B"}]
    with pytest.raises(AuthError, match=r"acme refused: .*HTTP 400"):
        await password_grant(client, "/token", "ana", SecretStr("wrong"), "acme refused")()
    with pytest.raises(AuthError, match="acme refused: invalid_grant"):  # refused with HTTP 200
        await grant(client, "/token", {"username": "bob", "password": "right"}, "acme refused")


async def test_a_self_signed_token_is_signed_on_the_injected_clock_and_verifies() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    token = self_signed(SecretStr(pem), "ES256", {"iss": "me"}, 900, lambda: at, "the token", {"kid": "K1"})
    value = await token.value()
    claims = jwt.decode(value, key.public_key(), algorithms=["ES256"], options={"verify_exp": False})
    assert claims == {"iss": "me", "iat": int(at.timestamp()), "exp": int(at.timestamp()) + 900}
    assert jwt.get_unverified_header(value)["kid"] == "K1"
    with pytest.raises(AuthError, match="cannot sign the token with private_key"):
        await self_signed(SecretStr("not a key"), "ES256", {}, 900, lambda: at, "the token").value()


async def test_a_refused_token_is_renewed_and_tried_once_more_when_asked() -> None:
    async def answer(request: web.Request) -> web.Response:
        ok = request.headers.get("Authorization") not in ("Bearer t1", "Bearer t2")  # revoked before they expire
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    granted: list[str] = []

    async def renew() -> tuple[str, float]:
        granted.append(f"t{len(granted) + 1}")
        return granted[-1], 3600

    app = web.Application()
    app.router.add_get("/me", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        client = VendorClient("acme", str(server.make_url("/")))
        try:
            with pytest.raises(AuthError):  # by default the refusal is believed; the next call gets a fresh token
                await BearerToken(renew=renew).request(client, "GET", "/me")
            token = BearerToken(renew=renew)
            assert (await token.request(client, "GET", "/me", renew_refused=True)).data == {"ok": True}
            assert granted == ["t1", "t2", "t3"]
        finally:
            await client.close()
