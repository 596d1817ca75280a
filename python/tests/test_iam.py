"""IAM mode: requests signed with SigV4 (botocore) for execute-api, checked by a small server
that recomputes the signature independently, per AWS's "Create a signed AWS API request"
(canonical request → string to sign → HMAC-SHA256 key derivation), and refuses a mismatch as
API Gateway does (403). It answers an ``sts`` credential, which the botocore session uses."""

from __future__ import annotations

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
from lanyard import AwsIam, CredentialSource, IssuanceError
from lanyard.aws import botocore_session
from lanyard.iam import region_of_api_url

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
            if not ok or self.path != "/v1/credentials":
                self.answer(403, {"message": "The request signature we calculated does not match the signature you provided."})
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


def test_a_signature_made_with_the_wrong_secret_is_refused(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = gateway
    with CredentialSource(url, aws=AwsIam(region=REGION, session=aws_session("not-the-secret")), request=READ) as source:
        with pytest.raises(IssuanceError) as refused:
            source.get()

    assert refused.value.code == "forbidden" and refused.value.status == 403


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
