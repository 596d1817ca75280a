"""Verifies Lanyard access tokens (RFC 9068 JWT profile, ES256) for a resource server, with the
TypeScript verifier's rules, in this order (the first failure wins):

1. size: at most ``max_token_bytes``, before any parsing (``token_malformed``);
2. form: three strict base64url parts (no padding, no ``+`` ``/``, canonical), header and
   payload JSON objects (``token_malformed``);
3. header, by allow-list: ``alg`` exactly ``ES256`` (anything else, ``none`` and HS256 included,
   is ``signature_invalid``); no member but ``alg``, ``typ``, ``kid`` (so ``jku``, ``x5u``,
   ``jwk``, ``x5c``, ``crit`` are ``token_malformed``); ``typ`` ``at+jwt`` or
   ``application/at+jwt`` (case-insensitive); ``kid`` present;
4. key: the issuer's JWKS, ES256/P-256 only (``unknown_key``, ``verifier_unavailable``);
5. signature: exactly 64 bytes R‖S with R in [1, n−1] and S in [1, (n−1)/2] (low-S, so a token
   has one string), then ECDSA P-256 SHA-256 (``signature_invalid``);
6. claims: ``iss``, ``sub``, ``jti``, ``lane``, ``scope``, ``exp``, ``iat`` present and typed
   (``token_malformed``); ``iss`` exact (``wrong_issuer``); ``aud`` one of ours
   (``wrong_audience``); ``exp`` not passed (``token_expired``); ``nbf`` and ``iat`` not in the
   future (``token_not_yet_valid``), all with ``clock_tolerance``;
7. revocation (``credential_revoked``, or ``verifier_unavailable`` when never synchronised or
   when the issuer has not been reached for ``max_staleness``);
8. every required action is in ``scope`` (``insufficient_scope``).

Claims are only looked at after the signature holds, so a forged token learns nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._util import decode_base64url, fetchable_url, int_option, is_numeric_date, parse_json_object
from .errors import VerificationError
from .iam import AwsIam
from .jwks import JwksCache
from .revocations import RevocationFollower

if TYPE_CHECKING:
    from typing_extensions import NotRequired

# Order n of the P-256 group (FIPS 186-4 D.1.2.3).
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_N = (_P256_N - 1) // 2
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})


class LanyardClaims(TypedDict):
    """The claims of a verified Lanyard access token (other claims may be present too)."""

    iss: str
    #: The identity: ``support-triage/prod`` or an instance ``support-triage/prod#inst1``.
    sub: str
    aud: str | list[str]
    exp: float
    iat: float
    #: Credential id.
    jti: str
    #: Space-separated ``tool:verb`` actions.
    scope: str
    #: ``<identity>:<tool>:<level>:<tenant or *>``.
    lane: str
    nbf: NotRequired[float]
    tenant: NotRequired[str]
    env: NotRequired[str]
    role: NotRequired[str]
    task: NotRequired[dict[str, str]]
    #: RFC 8693 delegation: the user the agent acts for.
    act: NotRequired[dict[str, str]]
    #: The caller principal the credential was issued to.
    client_id: NotRequired[str]


@dataclass(frozen=True)
class Revocations:
    """How a verifier follows revocations.

    ``stream``: server-sent events, with the feed to fill gaps (a revocation reaches the verifier
    in about a second); ``poll``: the feed every ``poll_interval`` seconds; ``off``: no
    revocation check at all. Unless off, the feed is read with exactly one of ``api_key`` (the
    verifier principal's key) and ``aws`` (:class:`~lanyard.AwsIam`: SigV4 as the resource
    server's IAM role bound to a verifier principal, for a stack on AWS; ``poll`` only, since a
    deployed stack has no event stream). Past ``max_staleness`` seconds without contact with the
    issuer every token is refused with ``verifier_unavailable`` until contact returns.

    >>> Revocations("poll", aws=AwsIam(region="eu-west-1"), poll_interval=5)
    """

    mode: Literal["stream", "poll", "off"] = "stream"
    api_key: str | None = None
    poll_interval: float = 5.0
    max_staleness: float = 120.0
    on_error: Callable[[Exception], None] | None = None
    aws: AwsIam | None = None


def _malformed(message: str, *, expected: Any = None, actual: Any = None) -> VerificationError:
    return VerificationError("token_malformed", message, expected=expected, actual=actual)


def _bad_signature() -> VerificationError:
    return VerificationError("signature_invalid", "the token signature is invalid")


@dataclass(frozen=True)
class _Parsed:
    kid: str
    signing_input: bytes
    signature: bytes
    payload: bytes


class _VerifierBase:
    """What both verifiers share: options, the rules, the key cache and the revocation follower."""

    def __init__(
        self,
        issuer: str,
        *,
        audience: str | Sequence[str],
        revocations: Revocations | None = None,
        jwks_uri: str | None = None,
        clock_tolerance: int = 5,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
        jwks: JwksCache | None = None,
    ) -> None:
        if not isinstance(issuer, str) or issuer == "":
            raise TypeError("issuer is required")
        fetchable_url("issuer", issuer)
        self.issuer = issuer
        audiences = [audience] if isinstance(audience, str) else list(audience)
        if not audiences or any(not isinstance(a, str) or a == "" for a in audiences):
            raise TypeError("audience must be a non-empty string or sequence of strings")
        self._audiences = frozenset(audiences)
        self._audience_list = audiences
        self._tolerance = int_option("clock_tolerance", clock_tolerance, 0, 300)
        self._max_token_bytes = int_option("max_token_bytes", max_token_bytes, 256, 1_048_576)
        self._clock = clock
        base = issuer.rstrip("/")
        self.jwks = jwks if jwks is not None else JwksCache(jwks_uri or f"{base}/.well-known/jwks.json", clock=clock)
        chosen = revocations if revocations is not None else Revocations("stream")
        if chosen.mode not in ("stream", "poll", "off"):
            raise TypeError('revocations mode must be "stream", "poll" or "off"')
        self._follower: RevocationFollower | None = None
        if chosen.mode != "off":
            if not chosen.api_key and chosen.aws is None:
                raise TypeError('revocations api_key is required to follow revocations (or aws=AwsIam(…) on AWS, or Revocations("off"))')
            self._follower = RevocationFollower(
                issuer,
                api_key=chosen.api_key or None,
                aws=chosen.aws,
                mode=chosen.mode,
                poll_interval=chosen.poll_interval,
                max_staleness=chosen.max_staleness,
                clock=clock,
                on_key_rotated=self.jwks.invalidate,
                on_error=chosen.on_error,
            )

    def close(self) -> None:
        """Stops following revocations."""
        if self._follower is not None:
            self._follower.close()

    # -- the rules ------------------------------------------------------------------------------

    def _parse(self, token: object) -> _Parsed:
        # 1. Size before anything else. Base64url is ASCII, so characters count bytes.
        if not isinstance(token, str) or token == "":
            raise _malformed("the token is not a string")
        if len(token) > self._max_token_bytes:
            raise _malformed("the token is too large", expected=self._max_token_bytes, actual=len(token))
        # 2. Form.
        parts = token.split(".")
        if len(parts) != 3:
            raise _malformed("the token is not a JWS compact serialization")
        header_bytes, payload_bytes = decode_base64url(parts[0]), decode_base64url(parts[1])
        if header_bytes is None or payload_bytes is None:
            raise _malformed("the token is not strict base64url")
        header = parse_json_object(header_bytes)
        if header is None:
            raise _malformed("the token header is not a JSON object")
        # 3. Header, by allow-list.
        alg = header.get("alg")
        if alg != "ES256":
            raise VerificationError("signature_invalid", "the token algorithm is not allowed", expected="ES256", actual=alg if isinstance(alg, str) else None)
        for member in header:
            if member not in _HEADER_MEMBERS:
                raise _malformed("the token header has a member this verifier does not accept", actual=member)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
            raise _malformed("the token is not an access token (typ at+jwt)", expected="at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid == "":
            raise _malformed("the token header has no kid")
        signature = decode_base64url(parts[2])
        if signature is None:
            raise _malformed("the token is not strict base64url")
        return _Parsed(kid, f"{parts[0]}.{parts[1]}".encode("ascii"), signature, payload_bytes)

    def _check_signed(self, parsed: _Parsed, key: ec.EllipticCurvePublicKey) -> LanyardClaims:
        # 5. Signature: the range checks are ours, not left to the crypto backend
        # (CVE-2022-21449, "psychic signatures", was a missing zero check).
        signature = parsed.signature
        if len(signature) != 64:
            raise _bad_signature()
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (1 <= r < _P256_N and 1 <= s <= _P256_HALF_N):
            raise _bad_signature()
        try:
            key.verify(encode_dss_signature(r, s), parsed.signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise _bad_signature() from None
        # 6. Claims (only now: they are authentic).
        payload = parse_json_object(parsed.payload)
        if payload is None:
            raise _malformed("the token payload is not a JSON object")
        return self._check_claims(payload)

    def _check_claims(self, payload: dict[str, Any]) -> LanyardClaims:
        iss = payload.get("iss")
        if not isinstance(iss, str):
            raise _malformed("the token has no iss claim")
        if iss != self.issuer:
            raise VerificationError("wrong_issuer", "the token was issued by another issuer", expected=self.issuer, actual=iss)
        aud = payload.get("aud")
        if not (isinstance(aud, str) and aud in self._audiences) and not (isinstance(aud, list) and any(isinstance(a, str) and a in self._audiences for a in aud)):
            raise VerificationError("wrong_audience", "the token is meant for another audience", expected=list(self._audience_list), actual=aud)
        for name in ("sub", "jti", "lane"):
            value = payload.get(name)
            if not isinstance(value, str) or value == "":
                raise _malformed(f"the token has no {name} claim")
        if not isinstance(payload.get("scope"), str):
            raise _malformed("the token has no scope claim")
        exp, iat, nbf = payload.get("exp"), payload.get("iat"), payload.get("nbf")
        if not is_numeric_date(exp):
            raise _malformed("the token has no exp claim")
        if not is_numeric_date(iat):
            raise _malformed("the token has no iat claim")
        if "nbf" in payload and not is_numeric_date(nbf):
            raise _malformed("the token nbf claim is not a NumericDate")
        now = self._clock()
        # RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
        if now - self._tolerance >= exp:  # type: ignore[operator]
            raise VerificationError("token_expired", "the token has expired", expected=now, actual=exp)
        if nbf is not None and now + self._tolerance < nbf:
            raise VerificationError("token_not_yet_valid", "the token is not valid yet", expected=now, actual=nbf)
        # RFC 9068 §2.2: `iat` is the real issue time; one in the future means a broken or forged clock.
        if now + self._tolerance < iat:  # type: ignore[operator]
            raise VerificationError("token_not_yet_valid", "the token was issued in the future", expected=now, actual=iat)
        return payload  # type: ignore[return-value]

    def _finish(self, claims: LanyardClaims, kid: str, action: str | Sequence[str] | None) -> LanyardClaims:
        # 7. Revocation.
        follower = self._follower
        if follower is not None:
            # Fail closed on a feed gone quiet: a lane revoked since the last contact would pass.
            if not follower.fresh:
                raise VerificationError("verifier_unavailable", "revocations are out of date: the issuer has not been reached for too long")
            target = follower.is_revoked(claims, kid)
            if target is not None:
                raise VerificationError("credential_revoked", "the credential has been revoked", revoked_target=target)
        # 8. Scope (RFC 6749 §3.3: space-delimited, case-sensitive).
        if action is not None:
            required = [action] if isinstance(action, str) else list(action)
            granted = claims["scope"].split(" ")
            if any(a not in granted for a in required):
                raise VerificationError(
                    "insufficient_scope",
                    "the token does not grant the required action",
                    expected=required,
                    actual=[a for a in dict.fromkeys(granted) if a != ""],
                )
        return claims


class Verifier(_VerifierBase):
    """Create it once, outside the request handler: it caches keys and follows revocations in
    the background. :meth:`verify` is for threads; :class:`AsyncVerifier` is the asyncio twin.

    >>> verifier = Verifier(
    ...     "https://lanyard.example",
    ...     audience="https://tickets.example.internal",
    ...     revocations=Revocations("stream", api_key=os.environ["LANYARD_VERIFIER_KEY"]),
    ... )
    >>> claims = verifier.verify(token, action="tickets:read")
    """

    def verify(self, token: str, action: str | Sequence[str] | None = None) -> LanyardClaims:
        """Verifies ``token`` and returns its claims, or raises :class:`~lanyard.VerificationError`."""
        parsed = self._parse(token)
        key = self.jwks.get_key(parsed.kid)
        claims = self._check_signed(parsed, key)
        if self._follower is not None and not self._follower.synced:
            self._follower.ready()
        return self._finish(claims, parsed.kid, action)

    def ready(self, timeout: float | None = None) -> None:
        """Returns once the first revocation sync is done (at once when revocations are off)."""
        if self._follower is not None:
            self._follower.ready(timeout)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncVerifier(_VerifierBase):
    """The asyncio twin of :class:`Verifier`: keys are fetched with an ``httpx.AsyncClient``;
    revocations are followed by the same background thread (the hot path only reads a dict)."""

    async def verify(self, token: str, action: str | Sequence[str] | None = None) -> LanyardClaims:
        parsed = self._parse(token)
        key = await self.jwks.get_key_async(parsed.kid)
        claims = self._check_signed(parsed, key)
        if self._follower is not None and not self._follower.synced:
            await asyncio.to_thread(self._follower.ready)
        return self._finish(claims, parsed.kid, action)

    async def ready(self, timeout: float | None = None) -> None:
        if self._follower is not None:
            await asyncio.to_thread(self._follower.ready, timeout)

    async def __aenter__(self) -> AsyncVerifier:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


