"""JWKS cache for the issuer's ES256 keys (the TypeScript SDK's rules).

- keys are fetched once and kept for ``ttl`` (10 min); concurrent misses share one fetch;
- an unknown ``kid`` triggers at most one refetch per ``cool_down`` (30 s): within it an unknown
  ``kid`` is refused at once, so a flood of forged kids cannot turn the verifier into a JWKS
  request amplifier. ``Signing Key Rotated`` drops the cool-down (:meth:`JwksCache.invalidate`);
- only ``kty EC``, ``crv P-256`` keys with ``alg`` ES256 (or absent) and ``use`` sig (or absent)
  are kept; two keys under one ``kid`` are ambiguous and neither is used;
- a fetch that fails is ``verifier_unavailable``: a token that cannot be checked is refused.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from typing import Any, Callable, NoReturn

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from ._util import decode_base64url, fetchable_url, number_option
from .errors import VerificationError

_MAX_JWKS_CHARS = 256 * 1024
_MAX_KEYS = 100
#: After a failed fetch, callers within this window get the failure without a new request.
_FAILURE_BACKOFF = 1.0


def import_keys(document: Any) -> dict[str, ec.EllipticCurvePublicKey]:
    """The usable P-256 keys of a JWKS document, by ``kid``; raises ``ValueError`` when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or len(document["keys"]) > _MAX_KEYS:
        raise ValueError("not a JWKS document")
    candidates: list[tuple[str, bytes, bytes]] = []
    seen: set[str] = set()
    duplicate: set[str] = set()
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid, x, y = jwk.get("kid"), jwk.get("x"), jwk.get("y")
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or not isinstance(kid, str) or kid == "":
            continue
        if jwk.get("alg", "ES256") != "ES256" or jwk.get("use", "sig") != "sig":
            continue
        xb = decode_base64url(x) if isinstance(x, str) else None
        yb = decode_base64url(y) if isinstance(y, str) else None
        if xb is None or yb is None or len(xb) != 32 or len(yb) != 32:
            continue
        if kid in seen:
            duplicate.add(kid)
        seen.add(kid)
        candidates.append((kid, xb, yb))
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for kid, xb, yb in candidates:
        if kid in duplicate:
            continue
        try:
            keys[kid] = ec.EllipticCurvePublicNumbers(int.from_bytes(xb, "big"), int.from_bytes(yb, "big"), ec.SECP256R1()).public_key()
        except ValueError:  # not a point on the curve: skipped like any other unusable key
            continue
    return keys


def _unknown_key(kid: str) -> VerificationError:
    return VerificationError("unknown_key", "the token was signed with a key this verifier does not know", actual=kid)


class JwksCache:
    """Create it once (the :class:`~lanyard.Verifier` makes one); share it between verifiers of
    one issuer. :meth:`get_key` is for threads, :meth:`get_key_async` for asyncio."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = 600.0,
        cool_down: float = 30.0,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.jwks_uri = fetchable_url("jwks_uri", jwks_uri)
        self._clock = clock
        self._ttl = number_option("ttl", ttl, 1, 86_400)
        self._cool_down = number_option("cool_down", cool_down, 0, 3600)
        self._timeout = number_option("timeout", timeout, 0.1, 60)
        self._client = client
        self._async_client = async_client
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at = -math.inf
        self._failure: tuple[float, VerificationError] | None = None
        self._lock = threading.Lock()
        self._async_flight: asyncio.Future[None] | None = None

    def _cached(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key when the cache can answer without a fetch; raises when it must refuse."""
        now = self._clock()
        if now - self._fetched_at < self._ttl:
            key = self._keys.get(kid)
            if key is not None:
                return key
            # Penalty box: an unknown kid within the cool-down is refused without a request.
            if now - self._fetched_at < self._cool_down:
                raise _unknown_key(kid)
        if self._failure is not None and now - self._failure[0] < _FAILURE_BACKOFF:
            raise self._failure[1]
        return None

    def _loaded(self, status: int, text: str) -> None:
        try:
            if status != 200:
                raise ValueError(f"JWKS answered HTTP {status}")
            if len(text) > _MAX_JWKS_CHARS:
                raise ValueError("JWKS document too large")
            self._keys = import_keys(json.loads(text))
        except ValueError as cause:
            self._failed(cause)
        self._fetched_at = self._clock()
        self._failure = None

    def _failed(self, cause: Exception) -> NoReturn:
        error = VerificationError("verifier_unavailable", "signing keys could not be fetched")
        error.__cause__ = cause
        self._failure = (self._clock(), error)
        raise error

    def _found(self, kid: str) -> ec.EllipticCurvePublicKey:
        key = self._keys.get(kid)
        if key is None:
            raise _unknown_key(kid)
        return key

    def get_key(self, kid: str) -> ec.EllipticCurvePublicKey:
        """The verification key for ``kid``; raises ``unknown_key`` or ``verifier_unavailable``."""
        key = self._cached(kid)
        if key is not None:
            return key
        fetched_before = self._fetched_at
        with self._lock:  # one fetch at a time; a thread that waited reuses the one just made
            if self._fetched_at == fetched_before:
                self._fetch()
        return self._found(kid)

    def _fetch(self) -> None:
        try:
            client = self._client or httpx.Client()
            try:
                response = client.get(self.jwks_uri, headers={"accept": "application/json"}, timeout=self._timeout, follow_redirects=False)
                status, text = response.status_code, response.text
            finally:
                if self._client is None:
                    client.close()
        except (httpx.HTTPError, OSError) as cause:
            self._failed(cause)
        self._loaded(status, text)

    async def get_key_async(self, kid: str) -> ec.EllipticCurvePublicKey:
        key = self._cached(kid)
        if key is not None:
            return key
        flight = self._async_flight
        if flight is None:
            flight = self._async_flight = asyncio.ensure_future(self._fetch_async())

            def landed(done: asyncio.Future[None]) -> None:
                self._async_flight = None
                if not done.cancelled():
                    done.exception()

            flight.add_done_callback(landed)
        await asyncio.shield(flight)
        return self._found(kid)

    async def _fetch_async(self) -> None:
        try:
            client = self._async_client or httpx.AsyncClient()
            try:
                response = await client.get(self.jwks_uri, headers={"accept": "application/json"}, timeout=self._timeout, follow_redirects=False)
                status, text = response.status_code, response.text
            finally:
                if self._async_client is None:
                    await client.aclose()
        except (httpx.HTTPError, OSError) as cause:
            self._failed(cause)
        self._loaded(status, text)

    def invalidate(self) -> None:
        """Forgets the cool-down (a key was rotated): the next unknown ``kid`` refetches."""
        self._fetched_at = min(self._fetched_at, self._clock() - self._cool_down)
        self._failure = None
