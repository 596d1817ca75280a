"""Bearer authentication for ASGI frameworks (FastAPI, Starlette): a FastAPI dependency and a
plain ASGI middleware, both answering refusals with the RFC 6750 challenge of
:func:`lanyard.challenge.to_error_response`.

FastAPI:

>>> verifier = AsyncVerifier(ISSUER, audience=AUDIENCE, revocations=Revocations("stream", api_key=KEY))
>>> app = FastAPI()
>>> install(app)
>>> @app.get("/tickets/{ticket_id}")
... async def read(ticket_id: str, claims: LanyardClaims = Depends(require(verifier, "tickets:read"))):
...     return {"ticket": ticket_id, "for": claims["sub"]}

Any ASGI app: ``app = BearerAuthMiddleware(app, verifier=verifier, action="tickets:read")``;
the claims are in ``scope["state"]["lanyard"]`` (``request.state.lanyard`` in Starlette).
"""

from __future__ import annotations

import inspect

from typing import Any, Awaitable, Callable, MutableMapping, Sequence, Union

from .challenge import bearer_token, missing_token, to_error_response
from .errors import VerificationError
from .verifier import AsyncVerifier, LanyardClaims, Verifier

AnyVerifier = Union[Verifier, AsyncVerifier]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def authenticate(verifier: AnyVerifier, authorization: str | None, action: str | Sequence[str] | None = None) -> LanyardClaims:
    """Verifies the bearer token of an ``Authorization`` header; raises :class:`VerificationError`
    (a request without a token is ``token_malformed`` with ``missing``)."""
    token = bearer_token(authorization)
    if token is None:
        raise missing_token()
    if isinstance(verifier, AsyncVerifier):
        return await verifier.verify(token, action)
    # A sync verifier may fetch keys: off the event loop.
    import asyncio

    return await asyncio.to_thread(verifier.verify, token, action)


def _http_exception(error: VerificationError) -> Exception:
    from fastapi import HTTPException

    response = to_error_response(error)
    exception = HTTPException(response.status, detail={"code": error.code, "message": error.message}, headers=response.headers)
    exception.lanyard_error = error  # type: ignore[attr-defined]
    return exception


def require(verifier: AnyVerifier, action: str | Sequence[str] | None = None) -> Callable[..., Awaitable[LanyardClaims]]:
    """A FastAPI dependency: the verified claims, or the 401 / 403 / 503 answer.

    Without :func:`install` FastAPI answers ``{"detail": {"code", "message"}}`` with the right
    status and challenge; with it, the SDK's own ``{"error": {"code", "message"}}``.
    """
    from fastapi import Request

    async def dependency(request: Request) -> LanyardClaims:
        try:
            return await authenticate(verifier, request.headers.get("authorization"), action)
        except VerificationError as error:
            raise _http_exception(error) from None
        except Exception as error:  # a bug or an outage must not become a 500 with a stack trace
            raise _http_exception(VerificationError("verifier_unavailable", "the token could not be checked")) from error

    # FastAPI reads the signature to inject the request; annotations here are strings (PEP 563)
    # naming a class imported locally, so hand it the evaluated signature.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    )
    return dependency


def install(app: Any) -> None:
    """Makes a FastAPI / Starlette app answer the dependency's refusals with the SDK's body."""
    from fastapi import HTTPException
    from fastapi.exception_handlers import http_exception_handler
    from starlette.responses import Response

    async def handler(request: Any, exc: Exception) -> Any:
        error = getattr(exc, "lanyard_error", None)
        if not isinstance(error, VerificationError):
            return await http_exception_handler(request, exc)  # type: ignore[arg-type]
        response = to_error_response(error)
        return Response(response.body, status_code=response.status, headers=response.headers)

    app.add_exception_handler(HTTPException, handler)


class BearerAuthMiddleware:
    """Pure ASGI middleware: every HTTP request must carry a token granting ``action``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, verifier: AnyVerifier, action: str | Sequence[str] | None = None) -> None:
        if not isinstance(verifier, (Verifier, AsyncVerifier)):
            raise TypeError("BearerAuthMiddleware: verifier is required")
        self.app = app
        self.verifier = verifier
        self.action = action

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            claims = await authenticate(self.verifier, authorization, self.action)
        except Exception as error:  # noqa: BLE001 - answered as verifier_unavailable, never a stack trace
            response = to_error_response(error)
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
            headers.append((b"content-length", str(len(response.body)).encode("ascii")))
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": response.body})
            return
        scope.setdefault("state", {})["lanyard"] = claims
        await self.app(scope, receive, send)


__all__ = ["BearerAuthMiddleware", "authenticate", "install", "require"]
