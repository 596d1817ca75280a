"""The sync credential source against the real local issuer (``lanyard dev``). The agent's clock
is moved forward by the test where a refresh is due; the issuer keeps real time."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest

from conftest import CRM, KEYS, READ, Clock, Issuer
from lanyard import AuthorityLoss, CredentialSource, IssuanceError, RefreshTokenChain


def advance_to_refresh(source: CredentialSource, clock: Clock) -> None:
    """Moves the agent's clock just past the source's refresh time (before the expiry edge)."""
    state = source.state()
    assert state.next_refresh is not None and state.valid_until is not None
    clock.offset += state.next_refresh - clock() + 0.01


def test_issues_a_credential_for_the_lane_and_holds_it_until_its_refresh_time(issuer: Issuer) -> None:
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ) as source:
        first = source.get()
        again = source.get()

    assert first.kind == "jwt" and first.token and first.token.count(".") == 2
    assert first.lane == "support-triage/prod:tickets:read:acme"
    assert first.audience == "https://tickets.example.internal"
    assert again.credential_id == first.credential_id
    assert first.token not in repr(first)


def test_refreshes_ahead_of_expiry_with_jitter(issuer: Issuer) -> None:
    clock = Clock()
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ, clock=clock) as source:
        first = source.get()
        state = source.state()
        assert state.next_refresh is not None and state.valid_until is not None
        # Jitter 0.2 spreads the refresh over the last fifth before refreshAt, and before the skew edge.
        issued, refresh_at = first.issued_at.timestamp(), first.refresh_at.timestamp()
        assert refresh_at - 0.2 * (refresh_at - issued) - 1.5 <= state.next_refresh <= refresh_at + 1.5
        assert state.next_refresh < state.valid_until < first.expires_at.timestamp() + 1.5

        advance_to_refresh(source, clock)
        second = source.get()

    assert second.credential_id != first.credential_id
    assert source.state().last_refresh is not None


def test_one_refresh_in_flight_for_many_threads(issuer: Issuer) -> None:
    clock = Clock()
    with CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ, clock=clock) as source:
        first = source.get()
        advance_to_refresh(source, clock)
        results: list[str] = []
        barrier = threading.Barrier(8)

        def worker() -> None:
            barrier.wait()
            results.append(source.get().credential_id)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert len(results) == 8
    assert len(set(results)) == 1
    assert results[0] != first.credential_id


def test_a_revoked_lane_stops_its_source_at_once_while_the_neighbour_lane_keeps_working(issuer: Issuer) -> None:
    clock = Clock()
    losses: list[AuthorityLoss] = []
    requests = {"count": 0}

    def counting(request: httpx.Request) -> None:
        requests["count"] += 1

    client = httpx.Client(event_hooks={"request": [counting]})
    tickets = CredentialSource(issuer.url, api_key=KEYS["agent"], request={**READ, "tenant": "globex"}, clock=clock, on_authority_lost=losses.append, client=client)
    crm = CredentialSource(issuer.url, api_key=KEYS["agent"], request={**CRM, "tenant": "globex"}, clock=clock)
    held = tickets.get()
    neighbour = crm.get()
    issuer.revoke({"lane": held.lane})

    clock.offset += 1000  # both lanes are past their refresh time (and their expiry)
    with pytest.raises(IssuanceError) as refused:
        tickets.get()
    asked = requests["count"]
    with pytest.raises(IssuanceError) as again:
        tickets.get()
    fresh = crm.get()

    assert refused.value.code == "lane_revoked"
    assert refused.value.status == 403 and refused.value.retryable is False
    assert again.value.code == "lane_revoked"
    assert requests["count"] == asked  # a stopped source never asks the issuer again
    assert losses == [AuthorityLoss(held.lane, "lane_revoked", refused.value.message)]
    assert tickets.state().stopped == "lane_revoked"
    assert fresh.credential_id != neighbour.credential_id and fresh.lane == neighbour.lane
    tickets.close()
    crm.close()
    client.close()


def test_one_rotating_refresh_token_is_shared_by_an_instance_s_lanes_and_a_reuse_revokes_the_instance(issuer: Issuer) -> None:
    spawned = issuer.spawn([READ, CRM])
    original = spawned["refreshToken"]
    chain = RefreshTokenChain(original)
    clock = Clock()
    losses: list[AuthorityLoss] = []
    tickets = CredentialSource(issuer.url, refresh_token=chain, request=READ, initial=spawned["credentials"][0], clock=clock, on_authority_lost=losses.append)
    crm = CredentialSource(issuer.url, refresh_token=chain, request=CRM, initial=spawned["credentials"][1], clock=clock, on_authority_lost=losses.append)

    clock.offset += 700  # both lanes are due
    refreshed = [tickets.get(), crm.get()]
    after_two = chain.current()

    assert [c.identity for c in refreshed] == [spawned["instance"]["identity"]] * 2
    assert [c.credential_id for c in refreshed] != [c["credentialId"] for c in spawned["credentials"]]
    assert after_two not in (original,) and after_two.startswith("lr_")
    assert "refreshToken" not in refreshed[0].raw

    # A copy of the first token, presented after its successor was used: the instance is revoked.
    reuse = issuer.call("POST", "/v1/instance/credentials", original, READ)
    assert reuse.status_code == 401
    clock.offset += 700
    with pytest.raises(IssuanceError) as refused:
        tickets.get()
    assert refused.value.code in ("identity_revoked", "unauthenticated")
    assert [loss.code for loss in losses] == [refused.value.code]
    assert tickets.state().stopped == refused.value.code
    tickets.close()
    crm.close()


def test_the_circuit_opens_after_repeated_unauthenticated_and_stays_open_until_reset(issuer: Issuer) -> None:
    source = CredentialSource(issuer.url, api_key="lk_py_test_unknown_key_0000000000", request=READ, circuit_failures=2)
    codes: list[str] = []
    for _ in range(3):
        with pytest.raises(IssuanceError) as refused:
            source.get()
        codes.append(refused.value.code)
    state = source.state()
    source.reset()

    assert codes == ["unauthenticated", "unauthenticated", "circuit_open"]
    assert state.circuit == "open" and state.consecutive_auth_failures == 2
    assert source.state().circuit == "closed"
    source.close()


def test_an_unreachable_issuer_is_issuer_unavailable_with_a_backoff(issuer: Issuer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = CredentialSource(f"http://127.0.0.1:{port}", api_key=KEYS["agent"], request=READ, backoff_base=0.05, backoff_max=0.2)
    errors: list[IssuanceError] = []
    for _ in range(2):
        with pytest.raises(IssuanceError) as refused:
            source.get()
        errors.append(refused.value)

    assert [e.code for e in errors] == ["issuer_unavailable", "issuer_unavailable"]
    assert all(e.retryable and e.retry_after is not None and 0 <= e.retry_after <= 0.2 for e in errors)
    assert source.state().consecutive_failures == 2 and source.state().circuit == "closed"
    source.close()


def test_a_request_the_issuer_calls_invalid_stops_the_source_without_an_authority_loss(issuer: Issuer) -> None:
    losses: list[Any] = []
    source = CredentialSource(issuer.url, api_key=KEYS["agent"], request={"tool": "tickets", "actions": []}, on_authority_lost=losses.append)
    with pytest.raises(IssuanceError) as refused:
        source.get()

    assert refused.value.code == "invalid_request" and refused.value.status == 400
    assert source.state().stopped == "invalid_request"
    assert losses == []
    source.close()


def test_a_closed_source_refuses_with_source_closed(issuer: Issuer) -> None:
    source = CredentialSource(issuer.url, api_key=KEYS["agent"], request=READ)
    source.close()
    with pytest.raises(IssuanceError) as refused:
        source.get()
    assert refused.value.code == "source_closed"


def test_options_are_checked_at_start_up() -> None:
    with pytest.raises(TypeError, match="exactly one of api_key, refresh_token or aws"):
        CredentialSource("http://127.0.0.1:1", request=READ)
    with pytest.raises(TypeError, match="https"):
        CredentialSource("http://issuer.example", api_key=KEYS["agent"], request=READ)
    with pytest.raises(TypeError, match="refresh token"):
        CredentialSource("http://127.0.0.1:1", refresh_token="not-a-token", request=READ)
