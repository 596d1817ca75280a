"""IAM mode: requests signed with SigV4 (botocore) for execute-api, checked by a small server
that recomputes the signature independently, per AWS's "Create a signed AWS API request"
(canonical request → string to sign → HMAC-SHA256 key derivation), and refuses a mismatch as
API Gateway does (403, ``{"message": …}``). It answers an ``sts`` credential, which the botocore
session uses, and serves a revocation feed that a verifier polls with SigV4."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.session
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import READ, TICKETS, serve, wait_until
from lanyard import AsyncCredentialSource, AsyncVerifier, AuthorityLoss, AwsIam, CredentialSource, IssuanceError, Revocations, VerificationError, Verifier
from lanyard.aws import botocore_session
from lanyard.iam import AwsSigningError, region_of_api_url

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-example"
REGION = "eu-west-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_query(query: str) -> str:
    """SigV4's canonical query: each name and value decoded, then encoded again (unreserved
    characters kept, everything else %XX), sorted by name then value."""
    pairs = [(quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def expected_signature(method: str, path: str, headers: dict[str, str], body: bytes, signed: list[str], amz_date: str, scope: str) -> str:
    parts = urlsplit(path)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].strip().split())}\n" for name in signed)
    canonical = "\n".join([method, quote(parts.path or "/", safe="/-_.~"), canonical_query(parts.query), canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{SECRET_KEY}".encode(), date), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signature_holds(method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
    """What API Gateway's IAM authorization checks of a SigV4 signature (the subset a test can)."""
    try:
        algorithm, rest = headers.get("authorization", "").split(" ", 1)
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        access_key, date, region, service, terminator = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        return (
            algorithm == "AWS4-HMAC-SHA256" and access_key == ACCESS_KEY and service == "execute-api" and region == REGION
            and terminator == "aws4_request" and "host" in signed and "x-amz-date" in signed
            and headers["x-amz-security-token"] == SESSION_TOKEN
            and hmac.compare_digest(fields["Signature"], expected_signature(method, path, headers, body, signed, headers["x-amz-date"], f"{date}/{region}/{service}/aws4_request"))
        )
    except (KeyError, ValueError):
        return False


def iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The resource-server side: a signing key whose JWKS the gateway serves (unsigned, as the stack
# does), and a revocation feed behind SigV4. Cursors hold characters a query must encode.
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "iam-test-key"
FEED: list[dict[str, Any]] = []


def cursor_for(position: int) -> str:
    return f"rev:{position}/page+one ~x"


def position_of(cursor: str) -> int:
    return int(cursor.split(":", 1)[1].split("/", 1)[0])


def jwks() -> dict[str, Any]:
    numbers = SIGNING_KEY.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
    return {"keys": [{"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "kid": KID, "alg": "ES256", "use": "sig"}]}


def mint(issuer: str, jti: str) -> str:
    """An access token as the issuer signs it: ES256, a 64-byte low-S signature."""
    segment = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()  # noqa: E731
    now = int(time.time())
    claims = {"iss": issuer, "sub": "support-triage/prod", "aud": TICKETS, "iat": now, "exp": now + 900, "jti": jti,
              "scope": "tickets:read", "lane": "support-triage/prod:tickets:read:acme", "tenant": "acme"}
    signing_input = f"{segment({'alg': 'ES256', 'typ': 'at+jwt', 'kid': KID})}.{segment(claims)}"
    r, s = decode_dss_signature(SIGNING_KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    s = min(s, P256_N - s)
    signature = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).rstrip(b"=").decode()
    return f"{signing_input}.{signature}"


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


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

        def do_GET(self) -> None:  # noqa: N802
            headers = {name.lower(): value for name, value in self.headers.items()}
            path, _, query = self.path.partition("?")
            if path == "/.well-known/jwks.json":
                self.answer(200, jwks())
                return
            ok = signature_holds("GET", self.path, headers, b"")
            seen.append({**headers, "path": self.path, "accepted": ok})
            if not ok:
                self.answer(403, {"message": "The request signature we calculated does not match the signature you provided."})
                return
            if path != "/v1/revocations":
                self.answer(403, {"message": "Missing Authentication Token"})
                return
            after = dict(parse_qsl(query)).get("after")
            start = position_of(after) if after is not None else 0
            self.answer(200, {"revocations": FEED[start:], "cursor": cursor_for(len(FEED)), "hasMore": False})

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            seen.append(headers)
            if not signature_holds("POST", self.path, headers, body):
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


def revocation_of(jti: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {"id": f"rev_{jti}", "targetType": "credential", "targetKey": f"credential:{jti}", "cutoff": iso(now + timedelta(seconds=1)), "relevantUntil": iso(now + timedelta(hours=1))}


def refusal_code(verifier: Verifier, token: str) -> str | None:
    try:
        verifier.verify(token, action="tickets:read")
    except VerificationError as error:
        return error.code
    return None


def test_a_verifier_polls_the_feed_with_sigv4_and_refuses_a_revoked_token_while_the_neighbour_passes(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = gateway
    FEED.clear()
    doomed, neighbour = mint(url, "crd_doomed"), mint(url, "crd_neighbour")
    revocations = Revocations("poll", aws=AwsIam(region=REGION, session=aws_session()), poll_interval=0.1, max_staleness=30)
    with Verifier(url, audience=TICKETS, revocations=revocations) as verifier:
        assert verifier.verify(doomed, action="tickets:read")["jti"] == "crd_doomed"

        FEED.append(revocation_of("crd_doomed"))
        wait_until(lambda: refusal_code(verifier, doomed) == "credential_revoked")

        assert verifier.verify(neighbour, action="tickets:read")["jti"] == "crd_neighbour"
    polls = [request for request in seen if request.get("path", "").startswith("/v1/revocations")]
    # Every poll was signed (no bearer) and its signature held, the encoded cursor's included.
    assert polls and all(poll["accepted"] and poll["authorization"].startswith("AWS4-HMAC-SHA256 ") for poll in polls)
    assert any("after=rev%3A" in poll["path"] for poll in polls)


def test_an_async_verifier_whose_signature_the_gateway_refuses_fails_closed(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    errors: list[Exception] = []
    revocations = Revocations("poll", aws=AwsIam(region=REGION, session=aws_session("not-the-secret")), on_error=errors.append)
    verifier = AsyncVerifier(url, audience=TICKETS, revocations=revocations)

    async def run() -> VerificationError:
        with pytest.raises(VerificationError) as refused:
            await verifier.verify(mint(url, "crd_any"), action="tickets:read")
        return refused.value

    try:
        refused = asyncio.run(run())
    finally:
        verifier.close()

    assert refused.code == "verifier_unavailable" and refused.status == 503
    assert any("HTTP 403" in str(error) for error in errors)


def test_an_iam_verifier_is_refused_at_construction_when_it_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    iam = AwsIam(region=REGION, session=aws_session())
    with pytest.raises(TypeError, match='needs mode "poll"'):
        Verifier("https://lanyard.example.com", audience=TICKETS, revocations=Revocations("stream", aws=iam))
    with pytest.raises(TypeError, match="exactly one of api_key"):
        Verifier("https://lanyard.example.com", audience=TICKETS, revocations=Revocations("poll", api_key="lk_verifier", aws=iam))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/lanyard-test-config")
    with pytest.raises(TypeError, match="revocations.aws: no region"):
        Verifier("https://lanyard.example.com", audience=TICKETS, revocations=Revocations("poll", aws=AwsIam(session=botocore.session.Session(profile=None))))


def test_aws_iam_is_importable_from_where_the_docs_say() -> None:
    import lanyard
    import lanyard.aws

    assert lanyard.aws.AwsIam is lanyard.AwsIam
    assert "AwsIam" in lanyard.aws.__all__ and "AwsIam" in lanyard.__all__
