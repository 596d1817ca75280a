"""``httpx.Auth`` for an agent: every request carries the lane's current credential.

- the credential goes only to the origins it is for: its audience's (when the audience is an
  ``https:`` URL, or ``http:`` on loopback) and the ``origins`` given (the broker's: a broker
  tool's audience is the URN ``urn:lanyard:broker``). A request anywhere else — a redirect hop
  included — raises :class:`~lanyard.OriginNotAllowedError` before anything is sent, so an agent
  talked into calling another URL cannot hand its token over;
- ``Authorization: Bearer <token>`` replaces any the caller set;
- a 401 whose ``WWW-Authenticate`` says ``error="invalid_token"`` with
  ``lanyard_code="token_expired"`` (what the verifier SDKs and the broker send) forces one
  refresh and one retry; with ``lanyard_code="credential_revoked"`` the authority is gone: the
  source stops (and calls ``on_authority_lost``) and the answer is returned as it is;
- any other answer is returned untouched: no retry loops against a resource server.

>>> auth = LanyardAuth(source, origins=["https://lanyard.example"])
>>> httpx.get("https://lanyard.example/v1/proxy/stripe/v1/charges", auth=auth)
"""

from __future__ import annotations

from typing import AsyncGenerator, Generator, Iterable, Union

import httpx

from ._util import fetchable_url, origin_of
from .challenge import parse_challenge
from .credentials import Credential
from .errors import IssuanceError, OriginNotAllowedError
from .source import AsyncCredentialSource, CredentialSource

AnySource = Union[CredentialSource, AsyncCredentialSource]


def _origin_option(name: str, value: object) -> str:
    url = fetchable_url(name, value)
    parts = httpx.URL(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.userinfo:
        raise TypeError(f"{name} must be an origin (scheme://host[:port]) without a path; the credential is bound to whole origins")
    return origin_of(url)


def _audience_origin(audience: str) -> str | None:
    try:
        return origin_of(fetchable_url("audience", audience))
    except TypeError:
        return None


class LanyardAuth(httpx.Auth):
    """Attaches and refreshes a source's credential. A :class:`~lanyard.CredentialSource` works
    with ``httpx.Client``, an :class:`~lanyard.AsyncCredentialSource` with ``httpx.AsyncClient``."""

    # The body is read first so a retry after `token_expired` can send it again.
    requires_request_body = True

    def __init__(self, source: AnySource, *, origins: Iterable[str] = ()) -> None:
        if not isinstance(source, (CredentialSource, AsyncCredentialSource)):
            raise TypeError("LanyardAuth needs a CredentialSource or an AsyncCredentialSource")
        if isinstance(origins, str):
            raise TypeError("origins must be a list of origins")
        self.source = source
        self.origins = tuple(_origin_option(f"origins[{i}]", value) for i, value in enumerate(origins))

    def _allowed(self, credential: Credential) -> tuple[str, ...]:
        audience = _audience_origin(credential.audience)
        return self.origins if audience is None or audience in self.origins else (audience, *self.origins)

    def _authorize(self, request: httpx.Request, credential: Credential) -> httpx.Request:
        if credential.token is None:
            raise TypeError(f"LanyardAuth needs a jwt credential; this source holds a {credential.kind} credential")
        allowed = self._allowed(credential)
        origin = origin_of(str(request.url))
        if origin not in allowed:
            raise OriginNotAllowedError(origin, allowed)
        request.headers["authorization"] = f"Bearer {credential.token}"
        return request

    def _verdict(self, response: httpx.Response) -> str | None:
        """``refresh``, ``revoked`` or ``None``, from a refused request's challenge."""
        if response.status_code != 401:
            return None
        challenge = parse_challenge(response.headers.get("www-authenticate"))
        if challenge.get("error") != "invalid_token":
            return None
        if challenge.get("lanyard_code") == "credential_revoked":
            self.source.report_authority_lost("credential_revoked", challenge.get("error_description") or "the resource server says the credential was revoked")
            return "revoked"
        return "refresh" if challenge.get("lanyard_code") == "token_expired" else None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        source = self.source
        if not isinstance(source, CredentialSource):
            raise TypeError("an AsyncCredentialSource needs httpx.AsyncClient")
        response = yield self._authorize(request, source.get())
        if self._verdict(response) != "refresh":
            return
        try:
            fresh = source.refresh()
        except IssuanceError:
            return
        # httpx reads and closes the refused answer itself before sending the retry.
        yield self._authorize(request, fresh)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        source = self.source
        if not isinstance(source, AsyncCredentialSource):
            raise TypeError("a CredentialSource needs httpx.Client (or use AsyncCredentialSource)")
        response = yield self._authorize(request, await source.get())
        if self._verdict(response) != "refresh":
            return
        try:
            fresh = await source.refresh()
        except IssuanceError:
            return
        yield self._authorize(request, fresh)
