"""Small helpers shared by both halves of the SDK."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Unused low bits of the last character, by ``len % 4`` (RFC 4648 §3.5: they must be zero).
_UNUSED_BITS = (0, 0, 0x0F, 0x03)


def fetchable_url(name: str, value: object) -> str:
    """Checks a URL the SDK will send a key or token to, or fetch keys from.

    Only ``https:`` is allowed, plus plain ``http:`` on loopback for ``lanyard dev``: keys or
    tokens sent over an open network could be read or replaced in transit. Raises at start-up,
    not on the first request.
    """
    if not isinstance(value, str) or value == "":
        raise TypeError(f"{name} is not a valid URL")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as error:
        raise TypeError(f"{name} is not a valid URL") from error
    if parts.scheme not in ("http", "https") or not host:
        raise TypeError(f"{name} must use https: (http: is allowed on loopback only)")
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise TypeError(f"{name} must use https: (http: is allowed on loopback only)")
    return value


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, the default port left out (as a browser would)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" if port is None or port == default else f"{scheme}://{host}:{port}"


def decode_base64url(value: str) -> bytes | None:
    """Decodes strict, canonical, unpadded base64url (RFC 7515 §2), or returns ``None``.

    Decoders are lenient (padding, ``+`` and ``/``, stray bits in the last character), which
    would let two different strings carry the same bytes; this one is not.
    """
    rest = len(value) % 4
    if rest == 1 or not _BASE64URL.fullmatch(value):
        return None
    if rest != 0 and _ALPHABET.index(value[-1]) & _UNUSED_BITS[rest]:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def encode_base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _refuse_constant(name: str) -> Any:
    # JSON (RFC 8259) has no NaN or Infinity; Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not JSON")


def _drop_proto(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parity with the TypeScript SDK, which drops `__proto__` so a token cannot reach
    # Object.prototype: the two SDKs must read the same claims from the same token.
    return {key: value for key, value in pairs if key != "__proto__"}


def parse_json_object(data: bytes | str) -> dict[str, Any] | None:
    """Parses JSON that must be an object, or returns ``None``."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_drop_proto)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def is_numeric_date(value: object) -> bool:
    """A JSON number that is a finite, non-negative NumericDate (``bool`` is not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def number_option(name: str, value: object, low: float, high: float) -> float:
    """Checks a numeric option; raises ``TypeError`` naming it."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise TypeError(f"{name} must be a number between {low:g} and {high:g}")
    return float(value)


def int_option(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TypeError(f"{name} must be an integer between {low} and {high}")
    return value


def parse_instant(value: object) -> float | None:
    """An ISO-8601 instant with a time zone (``2025-01-01T12:00:00.000Z``) as epoch seconds, or ``None``."""
    from datetime import datetime

    if not isinstance(value, str):
        return None
    try:
        # fromisoformat reads a trailing `Z` only from Python 3.11 on.
        instant = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return instant.timestamp() if instant.tzinfo is not None else None
