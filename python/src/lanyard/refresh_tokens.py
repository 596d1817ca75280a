"""The refresh token of one agent instance, shared by every credential source of that instance.

The issuer's refresh tokens are single use and rotate on every use; presenting a spent one
revokes the whole instance (it looks like a stolen copy). So the sources of one instance (one
per lane) must never present the same token twice, not even concurrently: they share one chain,
which lends the current token to one request at a time and keeps the token each answer carries.
A request whose answer was lost leaves the spent token in the chain: the issuer answers its
retry once, within a 60 s grace, with a fresh successor (docs/spawn.md).

>>> chain = RefreshTokenChain(spawned["refreshToken"])
>>> tickets = CredentialSource(issuer, refresh_token=chain, request=tickets_read)
>>> crm = CredentialSource(issuer, refresh_token=chain, request=crm_read)
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Awaitable, Callable, Tuple, TypeVar

T = TypeVar("T")

_REFRESH_TOKEN = re.compile(r"lr_[A-Za-z0-9_-]{16,128}")

#: What a use returns: its value, and the next token when the answer carried one.
Used = Tuple[T, "str | None"]


def _checked(token: object) -> str:
    if not isinstance(token, str) or not _REFRESH_TOKEN.fullmatch(token):
        raise TypeError("a refresh token is lr_ followed by base64url")
    return token


class RefreshTokenChain:
    """A refresh token chain for threads (the sync :class:`~lanyard.CredentialSource`)."""

    def __init__(self, initial: str) -> None:
        self._token = _checked(initial)
        self._lock = threading.Lock()

    def current(self) -> str:
        """The token the next request will present."""
        return self._token

    def use(self, use: Callable[[str], Used[T]]) -> T:
        """Runs ``use`` with the current token, one use at a time; a ``next`` token it returns
        replaces the current one before the next use starts."""
        with self._lock:
            value, following = use(self._token)
            if following is not None:
                self._token = _checked(following)
            return value


class AsyncRefreshTokenChain:
    """A refresh token chain for asyncio (the :class:`~lanyard.AsyncCredentialSource`)."""

    def __init__(self, initial: str) -> None:
        self._token = _checked(initial)
        self._lock = asyncio.Lock()

    def current(self) -> str:
        return self._token

    async def use(self, use: Callable[[str], Awaitable[Used[T]]]) -> T:
        async with self._lock:
            value, following = await use(self._token)
            if following is not None:
                self._token = _checked(following)
            return value
