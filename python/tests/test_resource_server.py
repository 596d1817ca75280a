"""The verifier against ``lanyard dev`` (revocations by stream and by polling), and a FastAPI
resource server (uvicorn on loopback) called by an agent through ``LanyardAuth``."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Iterator

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Request

from conftest import KEYS, READ, TICKETS, Issuer, wait_until
from lanyard import AsyncVerifier, CredentialSource, LanyardAuth, LanyardClaims, Revocations, VerificationError, Verifier
from lanyard.asgi import BearerAuthMiddleware, install, require


def issue(issuer: Issuer, request: dict[str, Any] = READ) -> dict[str, Any]:
    answer = issuer.call("POST", "/v1/credentials", KEYS["agent"], request)
    assert answer.status_code == 201, answer.text
    credential: dict[str, Any] = answer.json()
    return credential


def refused(verifier: Verifier, token: str) -> str | None:
    try:
        verifier.verify(token)
    except VerificationError as error:
        return error.code
    return None


@pytest.mark.parametrize("mode", ["stream", "poll"])
def test_a_revocation_reaches_the_verifier_and_spares_the_neighbour(issuer: Issuer, mode: str) -> None:
    revocations = Revocations(mode, api_key=KEYS["verifier"], poll_interval=0.2, max_staleness=30)  # type: ignore[arg-type]
    with Verifier(issuer.url, audience=TICKETS, revocations=revocations) as verifier:
        doomed, neighbour = issue(issuer), issue(issuer)
        claims = verifier.verify(doomed["token"], action="tickets:read")
        assert claims["jti"] == doomed["credentialId"] and claims["iss"] == issuer.url

        issuer.revoke({"credential": doomed["credentialId"]})
        wait_until(lambda: refused(verifier, doomed["token"]) == "credential_revoked")

        with pytest.raises(VerificationError) as error:
            verifier.verify(doomed["token"])
        assert error.value.revoked_target is not None and error.value.revoked_target.key == f"credential:{doomed['credentialId']}"
        assert verifier.verify(neighbour["token"])["jti"] == neighbour["credentialId"]


def test_the_verifier_refuses_to_start_without_a_revocation_key(issuer: Issuer) -> None:
    with pytest.raises(TypeError, match="api_key is required"):
        Verifier(issuer.url, audience=TICKETS)
    with pytest.raises(TypeError, match="https"):
        Verifier("http://issuer.example", audience=TICKETS, revocations=Revocations("off"))


def test_an_unreachable_feed_fails_closed(issuer: Issuer) -> None:
    verifier = Verifier(issuer.url, audience=TICKETS, revocations=Revocations("poll", api_key="lk_py_test_wrong_key_000000000001", on_error=lambda _: None))
    with pytest.raises(VerificationError) as error:
        verifier.verify(issue(issuer)["token"])
    verifier.close()

    assert error.value.code == "verifier_unavailable" and error.value.status == 503


class Server:
    """uvicorn on a loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_until(lambda: self.server.started)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def tickets_api(issuer: Issuer) -> Iterator[tuple[str, dict[str, Any]]]:
    """The FastAPI resource server of the docs: a few lines. ``control["expire_next"]`` makes the
    next request meet a verifier whose clock is an hour ahead (its token looks expired)."""
    verifier = AsyncVerifier(issuer.url, audience=TICKETS, revocations=Revocations("stream", api_key=KEYS["verifier"]))
    ahead = AsyncVerifier(issuer.url, audience=TICKETS, revocations=Revocations("off"), clock=lambda: time.time() + 3600)
    control: dict[str, Any] = {"expire_next": False, "seen": []}

    app = FastAPI()
    install(app)

    @app.middleware("http")
    async def remember(request: Request, call_next: Any) -> Any:
        control["seen"].append(request.headers.get("authorization"))
        return await call_next(request)

    read = require(verifier, "tickets:read")
    expired = require(ahead, "tickets:read")

    async def read_or_expired(request: Request) -> LanyardClaims:
        if control["expire_next"]:
            control["expire_next"] = False
            return await expired(request)
        return await read(request)

    @app.get("/tickets/{ticket_id}")
    async def ticket(ticket_id: str, claims: LanyardClaims = Depends(read_or_expired)) -> dict[str, str]:
        return {"ticket": ticket_id, "for": claims["sub"]}

    @app.get("/tickets")
    async def tickets(claims: LanyardClaims = Depends(require(verifier, "tickets:list"))) -> dict[str, str]:
        return {"for": claims["sub"]}

    with Server(app) as url:
        yield url, control
    verifier.close()


def test_the_fastapi_server_answers_an_agent_and_refuses_with_rfc_6750_challenges(issuer: Issuer, tickets_api: tuple[str, dict[str, Any]]) -> None:
    url, _ = tickets_api
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ) as source, httpx.Client(auth=LanyardAuth(source, origins=[url])) as agent:
        ok = agent.get(f"{url}/tickets/42")
        scope = agent.get(f"{url}/tickets")
    bare = httpx.get(f"{url}/tickets/42")
    forged = httpx.get(f"{url}/tickets/42", headers={"authorization": "Bearer e30.e30.AAAA"})

    assert ok.status_code == 200 and ok.json() == {"ticket": "42", "for": "support-triage/prod"}
    assert scope.status_code == 403
    assert 'error="insufficient_scope"' in scope.headers["www-authenticate"] and 'scope="tickets:list"' in scope.headers["www-authenticate"]
    assert scope.json() == {"error": {"code": "insufficient_scope", "message": "the token does not grant the required action"}}
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="lanyard"'
    assert forged.status_code == 401 and 'lanyard_code="signature_invalid"' in forged.headers["www-authenticate"]


def test_httpx_auth_refreshes_once_on_token_expired_and_retries(issuer: Issuer, tickets_api: tuple[str, dict[str, Any]]) -> None:
    url, control = tickets_api
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ) as source, httpx.Client(auth=LanyardAuth(source, origins=[url])) as agent:
        before = source.get()
        control["seen"].clear()
        control["expire_next"] = True
        answer = agent.get(f"{url}/tickets/7")
        after = source.get()

    assert answer.status_code == 200
    assert len(control["seen"]) == 2 and control["seen"][0] != control["seen"][1]
    assert after.credential_id != before.credential_id
    assert control["seen"][1] == f"Bearer {after.token}"


def test_the_asgi_middleware_puts_the_claims_on_the_request(issuer: Issuer) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = scope["state"]["lanyard"]["sub"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    verifier = AsyncVerifier(issuer.url, audience=TICKETS, revocations=Revocations("off"))
    guarded = BearerAuthMiddleware(app, verifier=verifier, action="tickets:read")

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://resource.test") as client:  # type: ignore[arg-type]
            token = issue(issuer)["token"]
            return await client.get("/", headers={"authorization": f"Bearer {token}"}), await client.get("/")

    ok, bare = asyncio.run(run())

    assert ok.status_code == 200 and ok.text == "support-triage/prod"
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "token_malformed"
