"""httpx.Auth through the real broker, and the asyncio source, against ``lanyard dev``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conftest import KEYS, READ, UPSTREAM_KEY, Clock, Issuer, Upstream
from lanyard import AsyncCredentialSource, AsyncRefreshTokenChain, AuthorityLoss, CredentialSource, IssuanceError, LanyardAuth, OriginNotAllowedError

PAYMENTS = {"tool": "payments", "actions": ["payments:charges.read"], "tenant": "acme"}


def test_the_broker_answers_through_httpx_auth_and_the_agent_never_holds_the_upstream_key(issuer: Issuer, upstream: Upstream) -> None:
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=PAYMENTS) as source, httpx.Client(auth=LanyardAuth(source, origins=[issuer.url])) as client:
        answer = client.get(f"{issuer.url}/v1/proxy/payments/v1/charges")
        token = source.get().token

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"charges": [{"id": "ch_1"}]}
    assert upstream.requests[-1]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert token and all(token not in str(r) for r in upstream.requests)


def test_a_revoked_credential_behind_the_broker_stops_the_source(issuer: Issuer) -> None:
    losses: list[AuthorityLoss] = []
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=PAYMENTS, on_authority_lost=losses.append) as source, httpx.Client(auth=LanyardAuth(source, origins=[issuer.url])) as client:
        held = source.get()
        issuer.revoke({"credential": held.credential_id})
        answer = client.get(f"{issuer.url}/v1/proxy/payments/v1/charges")
        with pytest.raises(IssuanceError) as refused:
            source.get()

    assert answer.status_code == 401
    assert 'lanyard_code="credential_revoked"' in answer.headers["www-authenticate"]
    assert refused.value.code == "credential_revoked"
    assert [loss.code for loss in losses] == ["credential_revoked"]


def test_the_credential_is_never_sent_to_another_origin(issuer: Issuer) -> None:
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=PAYMENTS) as source, httpx.Client(auth=LanyardAuth(source, origins=[issuer.url])) as client:
        with pytest.raises(OriginNotAllowedError) as refused:
            client.get("https://attacker.example/collect")

    assert refused.value.origin == "https://attacker.example"
    assert refused.value.allowed == (issuer.url,)


def test_origins_must_be_bare_origins() -> None:
    with pytest.raises(TypeError, match="without a path"):
        LanyardAuth(CredentialSource("http://127.0.0.1:1", api_key=KEYS["agent"], request=READ), origins=["http://127.0.0.1:1/v1/proxy"])


def test_the_asyncio_source_and_auth_through_the_broker(issuer: Issuer, upstream: Upstream) -> None:
    async def run() -> tuple[int, str, str]:
        clock = Clock()
        async with AsyncCredentialSource(issuer.url, api_key=KEYS["agent"], request=PAYMENTS, clock=clock) as source:
            async with httpx.AsyncClient(auth=LanyardAuth(source, origins=[issuer.url])) as client:
                answer = await client.get(f"{issuer.url}/v1/proxy/payments/v1/charges")
            first = await source.get()
            state = source.state()
            assert state.next_refresh is not None
            clock.offset += state.next_refresh - clock() + 0.01
            # Many tasks at the refresh time share one refresh.
            ids = {c.credential_id for c in await asyncio.gather(*(source.get() for _ in range(8)))}
            assert len(ids) == 1
            return answer.status_code, first.credential_id, ids.pop()

    status, first, second = asyncio.run(run())

    assert status == 200
    assert second != first


def test_the_asyncio_source_shares_an_instance_s_rotating_refresh_token_and_stops_on_revocation(issuer: Issuer) -> None:
    spawned = issuer.spawn([READ])

    async def run() -> tuple[str, str, list[AuthorityLoss]]:
        chain = AsyncRefreshTokenChain(spawned["refreshToken"])
        clock = Clock()
        losses: list[AuthorityLoss] = []
        async with AsyncCredentialSource(issuer.url, refresh_token=chain, request=READ, initial=spawned["credentials"][0], clock=clock, on_authority_lost=losses.append) as source:
            clock.offset += 700
            fresh = await source.get()
            assert chain.current() != spawned["refreshToken"]
            issuer.revoke({"identity": spawned["instance"]["identity"]})
            clock.offset += 700
            try:
                await source.get()
            except IssuanceError as error:
                return fresh.identity, error.code, losses
            raise AssertionError("the revoked instance was served")

    identity, code, losses = asyncio.run(run())

    assert identity == spawned["instance"]["identity"]
    assert code == "identity_revoked"
    assert [loss.code for loss in losses] == ["identity_revoked"]
