"""The shared verifier vectors (test/vectors/verifier/vectors.json), which the TypeScript
verifier test reads too: every hostile token refused with the same code (and message, where the
vector pins one), every valid one accepted with the same claims, by both Python verifiers."""

from __future__ import annotations

import asyncio
import json
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import pytest

from conftest import REPO, serve
from lanyard import AsyncVerifier, LanyardClaims, Revocations, VerificationError, Verifier

VECTORS: dict[str, Any] = json.loads((REPO / "test" / "vectors" / "verifier" / "vectors.json").read_text())
REFUSALS = [v for v in VECTORS["vectors"] if "refuse" in v]
ACCEPTANCES = [v for v in VECTORS["vectors"] if "accept" in v]


@pytest.fixture(scope="module")
def jwks_uri() -> Iterator[str]:
    body = json.dumps(VECTORS["jwks"]).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    for url in serve(Handler):
        yield f"{url}/.well-known/jwks.json"


def verify(kind: str, jwks_uri: str, vector: dict[str, Any]) -> LanyardClaims:
    options: dict[str, Any] = {
        "audience": VECTORS["audience"],
        "jwks_uri": jwks_uri,
        "revocations": Revocations("off"),
        "clock": lambda: float(VECTORS["now"]),
        "clock_tolerance": VECTORS["clockToleranceSeconds"],
        "max_token_bytes": VECTORS["maxTokenBytes"],
    }
    if kind == "sync":
        return Verifier(VECTORS["issuer"], **options).verify(vector["token"], vector.get("action"))
    return asyncio.run(AsyncVerifier(VECTORS["issuer"], **options).verify(vector["token"], vector.get("action")))


def test_the_file_has_refusals_and_acceptances() -> None:
    assert len(REFUSALS) > 50
    assert len(ACCEPTANCES) > 3


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("vector", REFUSALS, ids=[v["name"] for v in REFUSALS])
def test_refuses(kind: str, vector: dict[str, Any], jwks_uri: str) -> None:
    with pytest.raises(VerificationError) as refused:
        verify(kind, jwks_uri, vector)

    assert refused.value.code == vector["refuse"]["code"]
    if "message" in vector["refuse"]:
        assert refused.value.message == vector["refuse"]["message"]
    # A refusal never carries the token (nor its payload) in its message.
    assert vector["token"] == "" or vector["token"] not in refused.value.message


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("vector", ACCEPTANCES, ids=[v["name"] for v in ACCEPTANCES])
def test_accepts(kind: str, vector: dict[str, Any], jwks_uri: str) -> None:
    claims = verify(kind, jwks_uri, vector)

    for name, value in vector["accept"]["claims"].items():
        assert claims[name] == value  # type: ignore[literal-required]
    for name in vector["accept"].get("absent", []):
        assert name not in claims
