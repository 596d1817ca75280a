"""The SDK's typed errors: one class per side, each with a stable ``code``.

Callers tell failures apart by ``code``, never by the message. Messages are short, fixed
sentences: they never contain a token or a key, and never echo claim values back (those are
in the typed attributes, meant for logs, not for the wire).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

VerificationErrorCode = Literal[
    "token_malformed",
    "token_expired",
    "token_not_yet_valid",
    "signature_invalid",
    "unknown_key",
    "wrong_issuer",
    "wrong_audience",
    "credential_revoked",
    "insufficient_scope",
    "verifier_unavailable",
]
"""Every reason a verifier refuses a token. Stable: adding one is a breaking change."""

IssuanceErrorCode = Literal[
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_granted",
    "identity_revoked",
    "lane_revoked",
    "tenant_revoked",
    "tool_disabled",
    "kind_not_allowed",
    "credential_revoked",
    "rate_limited",
    "issuer_unavailable",
    "aws_credentials_unavailable",
    "circuit_open",
    "source_closed",
]
"""Why a credential source could not hand out a credential. The issuer's own codes pass
through as they are; ``circuit_open``, ``source_closed`` and ``aws_credentials_unavailable``
(IAM auth: no AWS credentials to sign with, so nothing was sent) are the source's own, as in
the TypeScript SDK. docs/errors.md lists them all."""

VERIFICATION_ERROR_CODES: frozenset[str] = frozenset(get_args(VerificationErrorCode))
ISSUANCE_ERROR_CODES: frozenset[str] = frozenset(get_args(IssuanceErrorCode))
#: Failures that asking again later can cure: the source backs off, never opens its circuit.
TRANSIENT_CODES: frozenset[str] = frozenset({"rate_limited", "issuer_unavailable", "aws_credentials_unavailable"})

# RFC 6750 §3.1: invalid_token → 401, insufficient_scope → 403. A token that could not be
# checked (keys or revocations unreachable) is not the caller's fault: 503, retryable.
_STATUS: dict[str, int] = {code: 401 for code in VERIFICATION_ERROR_CODES}
_STATUS["insufficient_scope"] = 403
_STATUS["verifier_unavailable"] = 503


@dataclass(frozen=True)
class RevokedTarget:
    """What a revocation matched: its target type and the full target key (``lane:<lane id>``)."""

    type: Literal["credential", "lane", "identity", "tenant", "tool", "key"]
    key: str


class LanyardError(Exception):
    """Base class of the SDK's errors."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class VerificationError(LanyardError):
    """A token was refused, or could not be checked.

    >>> try:
    ...     verifier.verify(token, action="tickets:read")
    ... except VerificationError as error:
    ...     if error.code == "credential_revoked":
    ...         log.warning("revoked by %s", error.revoked_target)
    """

    code: VerificationErrorCode

    def __init__(
        self,
        code: VerificationErrorCode,
        message: str,
        *,
        expected: Any = None,
        actual: Any = None,
        revoked_target: RevokedTarget | None = None,
        missing: bool = False,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        #: HTTP status a resource server should answer with (401, 403 or 503).
        self.status: int = _STATUS[code]
        #: What the verifier expected (issuer, audience, actions …).
        self.expected = expected
        #: What the token carried.
        self.actual = actual
        #: For ``credential_revoked``: which revocation killed the token.
        self.revoked_target = revoked_target
        #: The request carried no bearer token at all (RFC 6750 §3.1: no error code then).
        self.missing = missing

    def __repr__(self) -> str:
        return f"VerificationError({self.code!r}, {self.message!r})"


class IssuanceError(LanyardError):
    """A credential could not be obtained.

    ``retryable`` says whether asking again can help (the issuer's own ``retryable`` when it
    sent one); ``retry_after`` is, for ``rate_limited``, ``issuer_unavailable`` and
    ``aws_credentials_unavailable``, the seconds until the source asks the issuer again (at
    least the issuer's ``Retry-After``).
    """

    code: IssuanceErrorCode

    def __init__(
        self,
        code: IssuanceErrorCode,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        lane: str | None = None,
        issuer_code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        #: The HTTP status the issuer answered with, if it answered.
        self.status = status
        #: The issuer's request id, for its audit log.
        self.request_id = request_id
        #: The lane the source serves, when it is known.
        self.lane = lane
        #: The issuer's code when it is not one this SDK knows (it is then mapped by status).
        self.issuer_code = issuer_code
        self.retryable: bool = code in TRANSIENT_CODES if retryable is None else retryable
        self.retry_after = retry_after

    def with_retry_after(self, seconds: float) -> IssuanceError:
        """The same error, saying when the source will ask again."""
        copy = IssuanceError(
            self.code,
            self.message,
            status=self.status,
            request_id=self.request_id,
            lane=self.lane,
            issuer_code=self.issuer_code,
            retryable=self.retryable,
            retry_after=seconds,
        )
        copy.__cause__ = self.__cause__
        return copy

    def __repr__(self) -> str:
        return f"IssuanceError({self.code!r}, {self.message!r})"


class OriginNotAllowedError(LanyardError):
    """The httpx integration refused to send a lane's credential to an origin it is not for;
    nothing was sent."""

    code: Literal["origin_not_allowed"]

    def __init__(self, origin: str, allowed: tuple[str, ...]) -> None:
        super().__init__("origin_not_allowed", f"lanyard does not send this lane's credential to {origin}")
        self.code = "origin_not_allowed"
        #: Where the request was going: scheme, host and port only.
        self.origin = origin
        #: The origins the credential may be sent to.
        self.allowed = allowed
