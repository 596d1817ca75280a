"""The one place a verification failure becomes an HTTP answer (the ASGI adapters use it).

RFC 6750 §3: a 401 carries ``WWW-Authenticate: Bearer`` with ``error="invalid_token"``; a 403
``error="insufficient_scope"`` and the ``scope`` needed; a request with no credentials at all
gets the bare challenge (§3.1). ``lanyard_code`` is an extension attribute (§3 allows them)
with the stable code. ``verifier_unavailable`` is not a challenge: 503 with ``Retry-After``.
Nothing from the token reaches the headers or the body, and a foreign error is answered as
``verifier_unavailable`` without its message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import VerificationError

_REALM = "lanyard"
_RETRY_AFTER_SECONDS = "5"
# RFC 6750 §3: error_description and scope use %x20-21 / %x23-5B / %x5D-7E only.
_UNQUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True)
class ErrorResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def _quotable(text: str) -> str:
    return _UNQUOTABLE.sub("", text)


def to_error_response(error: BaseException) -> ErrorResponse:
    """The 401 / 403 / 503 answer to a failed authentication."""
    failure = error if isinstance(error, VerificationError) else VerificationError("verifier_unavailable", "the token could not be checked")
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    if failure.status == 503:
        headers["retry-after"] = _RETRY_AFTER_SECONDS
    elif failure.missing:
        headers["www-authenticate"] = f'Bearer realm="{_REALM}"'
    else:
        attributes = [
            f'realm="{_REALM}"',
            f'error="{"insufficient_scope" if failure.status == 403 else "invalid_token"}"',
            f'error_description="{_quotable(failure.message)}"',
            f'lanyard_code="{failure.code}"',
        ]
        expected = failure.expected
        if failure.code == "insufficient_scope" and isinstance(expected, list) and all(isinstance(a, str) for a in expected):
            attributes.append(f'scope="{_quotable(" ".join(expected))}"')
        headers["www-authenticate"] = "Bearer " + ", ".join(attributes)
    body = json.dumps({"error": {"code": failure.code, "message": failure.message}}).encode("utf-8")
    return ErrorResponse(failure.status, headers, body)


# RFC 6750 §2.1: `Bearer` (case-insensitive scheme, RFC 9110 §11.1) then the token.
_BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)


def bearer_token(authorization: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, or ``None``. Tokens in the query string
    or the body (RFC 6750 §2.2–2.3) are deliberately not read: they end up in logs."""
    if authorization is None:
        return None
    match = _BEARER.fullmatch(authorization)
    return match.group(1) if match else None


def missing_token() -> VerificationError:
    return VerificationError("token_malformed", "the request carries no bearer token", missing=True)


def parse_challenge(header: str | None) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge (RFC 6750 §3, quoted-string values)."""
    if not header or not re.match(r"\s*Bearer\b", header, re.IGNORECASE):
        return {}
    return {name.lower(): value for name, value in re.findall(r'([A-Za-z_][A-Za-z0-9_-]*)="([^"]*)"', header)}
