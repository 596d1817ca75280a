"""IAM mode: requests signed with SigV4 (botocore) for execute-api, checked by a small server
that recomputes the signature independently, per AWS's "Create a signed AWS API request"
(canonical request → string to sign → HMAC-SHA256 key derivation), and refuses a mismatch as
API Gateway does (403). It answers an ``sts`` credential, which the botocore session uses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import botocore.session
import pytest

from conftest import READ, serve
from lanyard import AsyncCredentialSource, AuthorityLoss, AwsIam, CredentialSource, IssuanceError
from lanyard.aws import botocore_session
from lanyard.iam import AwsSigningError, region_of_api_url

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-example"
REGION = "eu-west-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(method: str, path: str, headers: dict[str, str], body: bytes, signed: list[str], amz_date: str, scope: str) -> str:
    parts = urlsplit(path)
    canonical_query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].strip().split())}\n" for name in signed)
    canonical = "\n".join([method, quote(parts.path or "/", safe="/-_.~"), canonical_query, canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{SECRET_KEY}".encode(), date), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen.append(headers)
            authorization = headers.get("authorization", "")
            try:
                algorithm, rest = authorization.split(" ", 1)
                fields = dict(part.strip().split("=", 1) for part in rest.split(","))
                access_key, date, region, service, terminator = fields["Credential"].split("/")
                signed = fields["SignedHeaders"].split(";")
                ok = (
                    algorithm == "AWS4-HMAC-SHA256" and access_key == ACCESS_KEY and service == "execute-api" and region == REGION
                    and terminator == "aws4_request" and "host" in signed and "x-amz-date" in signed
                    and headers["x-amz-security-token"] == SESSION_TOKEN
                    and hmac.compare_digest(fields["Signature"], expected_signature("POST", self.path, headers, body, signed, headers["x-amz-date"], f"{date}/{region}/{service}/aws4_request"))
                )
            except (KeyError, ValueError):
                ok = False
            if not ok:
                self.answer(403, {"message": "The request signature we calculated does not match the signature you provided."})
                return
            if self.path == "/long-refusal/v1/credentials":  # a gateway refusal with a long message
                self.answer(403, {"message": "x" * 5000})
                return
            if self.path == "/lanyard-refusal/v1/credentials":  # Lanyard itself refusing, behind the gateway
                self.answer(403, {"error": {"code": "lane_revoked", "message": "the lane is revoked", "retryable": False}})
                return
            if self.path != "/v1/credentials":
                self.answer(403, {"message": "Missing Authentication Token"})
                return
            now = datetime.now(timezone.utc)
            iso = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
            self.answer(201, {
                "credentialId": "crd_iam_1", "kind": "sts", "tokenType": "aws-sts", "identity": "support-triage/prod",
                "lane": "support-triage/prod:tickets:read:acme", "tool": "tickets", "tenant": "acme", "actions": ["tickets:read"],
                "audience": "https://tickets.example.internal", "issuedAt": iso(now), "expiresAt": iso(now + timedelta(seconds=900)),
                "refreshAt": iso(now + timedelta(seconds=675)),
                "aws": {"accessKeyId": "ASIALANYARD", "secretAccessKey": "lanyard-secret", "sessionToken": "lanyard-session", "expiration": iso(now + timedelta(seconds=900))},
            })

    for url in serve(Handler):
        yield url, seen


def refusal_of(source: CredentialSource) -> IssuanceError:
    with pytest.raises(IssuanceError) as refused:
        source.get()
    return refused.value


def aws_session(secret: str = SECRET_KEY) -> botocore.session.Session:
    session = botocore.session.Session()
    session.set_credentials(ACCESS_KEY, secret, SESSION_TOKEN)
    return session


def test_a_sigv4_signed_request_is_accepted_and_carries_no_bearer(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = gateway
    with CredentialSource(url, aws=AwsIam(region=REGION, session=aws_session()), request={**READ, "kind": "sts"}) as source:
        credential = source.get()

    assert credential.kind == "sts" and credential.aws is not None
    assert credential.aws.access_key_id == "ASIALANYARD"
    assert seen[-1]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "lanyard-secret" not in repr(credential)


def test_a_signature_the_gateway_refuses_is_unauthenticated_and_opens_the_circuit_never_a_lost_authority(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    losses: list[AuthorityLoss] = []
    iam = AwsIam(region=REGION, session=aws_session("not-the-secret"))
    with CredentialSource(url, aws=iam, request=READ, circuit_failures=2, on_authority_lost=losses.append) as source:
        refusals = [refusal_of(source) for _ in range(2)]
        after = refusal_of(source)
        state = source.state()

    assert [(r.code, r.status) for r in refusals] == [("unauthenticated", 403)] * 2
    assert refusals[0].message == "the API gateway refused the request's AWS signature: The request signature we calculated does not match the signature you provided."
    assert after.code == "circuit_open" and state.circuit == "open" and state.stopped is None
    assert losses == []


def test_a_gateway_message_is_cut_to_200_characters_in_the_error(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    with CredentialSource(url + "/long-refusal", aws=AwsIam(region=REGION, session=aws_session()), request=READ) as source:
        refused = refusal_of(source)

    assert refused.code == "unauthenticated"
    assert refused.message == "the API gateway refused the request's AWS signature: " + "x" * 200


def test_a_lanyard_403_in_iam_mode_is_still_a_lost_authority(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    losses: list[AuthorityLoss] = []
    with CredentialSource(url + "/lanyard-refusal", aws=AwsIam(region=REGION, session=aws_session()), request=READ, on_authority_lost=losses.append) as source:
        refused = refusal_of(source)

    assert refused.code == "lane_revoked"
    assert [loss.code for loss in losses] == ["lane_revoked"]


def no_credentials(monkeypatch: pytest.MonkeyPatch) -> botocore.session.Session:
    """A botocore session whose default chain finds nothing (and asks no metadata endpoint)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/lanyard-test-credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/lanyard-test-config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return botocore.session.Session()


def test_no_aws_credentials_backs_off_as_aws_credentials_unavailable_and_sends_nothing(gateway: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = gateway
    sent_before = len(seen)
    losses: list[AuthorityLoss] = []
    iam = AwsIam(region=REGION, session=no_credentials(monkeypatch))
    with CredentialSource(url, aws=iam, request=READ, circuit_failures=1, backoff_base=0.001, backoff_max=0.002, on_authority_lost=losses.append) as source:
        refusals = [refusal_of(source) for _ in range(4)]
        state = source.state()

    assert {r.code for r in refusals} == {"aws_credentials_unavailable"}
    assert all(r.retryable and r.retry_after is not None and r.status is None for r in refusals)
    assert "no AWS credentials" in refusals[0].message
    assert state.circuit == "closed" and state.consecutive_auth_failures == 0 and state.stopped is None
    assert losses == [] and len(seen) == sent_before


def test_a_failing_credential_provider_is_aws_credentials_unavailable_in_the_async_source_too(gateway: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.credentials import CredentialProvider
    from botocore.exceptions import CredentialRetrievalError

    class Unreachable(CredentialProvider):  # type: ignore[misc]
        METHOD = "unreachable-endpoint"

        def load(self) -> None:
            raise CredentialRetrievalError(provider="container-role", error_msg="the endpoint did not answer")

    url, seen = gateway
    sent_before = len(seen)
    session = no_credentials(monkeypatch)
    resolver = session.get_component("credential_provider")
    resolver.insert_before(resolver.providers[0].METHOD, Unreachable())

    async def run() -> IssuanceError:
        async with AsyncCredentialSource(url, aws=AwsIam(region=REGION, session=session), request=READ, backoff_base=0.001) as source:
            with pytest.raises(IssuanceError) as refused:
                await source.get()
            return refused.value

    refused = asyncio.run(run())

    assert refused.code == "aws_credentials_unavailable" and refused.retry_after is not None
    assert "the endpoint did not answer" in refused.message
    assert isinstance(refused.__cause__, AwsSigningError)
    assert len(seen) == sent_before


def test_botocore_uses_the_lane_s_sts_sessions_until_the_source_wants_to_refresh(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    with CredentialSource(url, aws=AwsIam(region=REGION, session=aws_session()), request={**READ, "kind": "sts"}) as source:
        session = botocore_session(source, region=REGION)
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials()
        held = source.get()

    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("ASIALANYARD", "lanyard-secret", "lanyard-session")
    assert credentials.method == "lanyard"
    assert held.aws is not None and credentials._expiry_time <= held.aws.expiration


def test_the_region_comes_from_an_execute_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/lanyard-test-config")
    assert region_of_api_url("https://abc123.execute-api.eu-central-1.amazonaws.com/prod") == "eu-central-1"
    assert region_of_api_url("https://lanyard.example.com") is None
    with pytest.raises(TypeError, match="no region"):
        CredentialSource("https://lanyard.example.com", aws=AwsIam(session=botocore.session.Session(profile=None)), request=READ)


def test_a_region_that_is_not_one_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="aws.region must be an AWS region"):
        AwsIam(region="Ireland")
    with pytest.raises(TypeError, match="aws.service"):
        AwsIam(region=REGION, service="Execute API")
