"""A credential source: what an agent holds to always have a valid credential for one lane.

The same rules as the TypeScript SDK's ``createCredentialSource``:

- **refresh before the edge**: each credential gets a refresh time drawn uniformly from
  ``[refreshAt − jitter window, refreshAt]`` (the issuer's ``refreshAt`` is ≈ 75 % of the
  lifetime; the window is ``jitter`` × the time from issue to ``refreshAt``), so a fleet spawned
  together does not refresh in the same second. It is never later than ``expiresAt − skew``,
  after which the credential is not handed out at all (``skew`` is at most a tenth of the
  lifetime). Times are counted on the agent's own clock from when the request was sent, so an
  issuer whose clock runs ahead cannot make the agent hold a credential too long;
- **one refresh in flight** per source, however many callers wait for it;
- **typed outcomes** (:class:`~lanyard.IssuanceError`):

  - ``credential_revoked``, ``lane_revoked``, ``identity_revoked``, ``tenant_revoked``,
    ``tool_disabled``, ``not_granted``, ``kind_not_allowed``, ``forbidden``: the authority is
    gone. The source stops at once (no retry ever reaches the issuer) and calls
    ``on_authority_lost`` exactly once;
  - ``unauthenticated``: after ``circuit_failures`` in a row the circuit opens and the issuer is
    not called again until :meth:`reset`. A refused refresh token is refused for good, so with
    refresh tokens the first ``unauthenticated`` stops the source like a lost authority;
  - ``rate_limited`` (429): wait at least ``Retry-After``; never an auth failure;
  - ``issuer_unavailable``, any 5xx, network errors and hangs (each request has a timeout):
    exponential backoff with full jitter; never an auth failure. While the current credential
    is usable it is handed out and the refresh retried after the backoff; without one, the
    call waits out the backoff, tries once, and raises;
  - ``aws_credentials_unavailable`` (IAM): botocore's chain had no credentials to sign with
    (the container endpoint or IMDS briefly unreachable), so nothing was sent: the same
    backoff as ``issuer_unavailable``, never the circuit;
  - other refusals (``invalid_request``, 404, 413, 415): retrying cannot help; the source stops
    with that code (no ``on_authority_lost``);
- **authentication**: an API key (``POST /v1/credentials``), an instance's refresh token
  (``POST /v1/instance/credentials``, rotated on every answer and shared through a
  :class:`~lanyard.RefreshTokenChain` by the sources of one instance), or IAM
  (:class:`~lanyard.AwsIam`: ``POST /v1/credentials`` signed with SigV4). In IAM mode a 403
  without a Lanyard error code is API Gateway refusing the signature (its body is
  ``{"message": …}``): ``unauthenticated``, counted toward the circuit, never a lost authority.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random as _random
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Literal, Mapping, Union

import httpx

from .credentials import Credential, CredentialRequest, parse_credential
from .errors import ISSUANCE_ERROR_CODES, TRANSIENT_CODES, IssuanceError, IssuanceErrorCode
from .iam import AwsIam, AwsSigningError
from .refresh_tokens import AsyncRefreshTokenChain, RefreshTokenChain

logger = logging.getLogger("lanyard")

#: The authority is gone: stop the lane, tell the orchestrator.
AUTHORITY_LOST: frozenset[str] = frozenset(
    {"credential_revoked", "lane_revoked", "identity_revoked", "tenant_revoked", "tool_disabled", "not_granted", "kind_not_allowed", "forbidden"}
)
#: The codes the issuer may send that the source passes through (the rest are the source's own).
_ISSUER_CODES = ISSUANCE_ERROR_CODES - {"circuit_open", "source_closed", "aws_credentials_unavailable"}
#: The most a source ever trusts of a lifetime before refreshing, whatever ``refreshAt`` says.
_MAX_SKEW_FRACTION = 0.1
_MAX_ANSWER_CHARS = 64 * 1024
_MAX_GATEWAY_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class AuthorityLoss:
    """What ``on_authority_lost`` is told: which lane, and the issuer's typed reason."""

    lane: str | None
    code: IssuanceErrorCode
    message: str


@dataclass(frozen=True)
class SourceState:
    """A snapshot of a source, for health checks and metrics (times are the source's clock)."""

    #: Until when the current credential is handed out; ``None`` without one.
    valid_until: float | None
    #: When the current credential will be refreshed.
    next_refresh: float | None
    last_refresh: float | None
    #: Failed refreshes in a row, of any kind.
    consecutive_failures: int
    #: ``unauthenticated`` answers in a row (what opens the circuit).
    consecutive_auth_failures: int
    circuit: Literal["closed", "open"]
    #: The code the source stopped with (until :meth:`reset`), else ``None``.
    stopped: IssuanceErrorCode | None


@dataclass(frozen=True)
class _Held:
    credential: Credential
    valid_until: float
    refresh_time: float


def _closed() -> IssuanceError:
    return IssuanceError("source_closed", "the credential source is closed")


def _code_for_status(status: int) -> IssuanceErrorCode:
    if status == 401:
        return "unauthenticated"
    if status == 403:
        return "forbidden"
    if status == 429:
        return "rate_limited"
    if status >= 500 or status < 400:
        return "issuer_unavailable"
    return "invalid_request"


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; seconds from now."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and len(text) <= 7:
        return float(text)
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def _json(text: str) -> Any:
    if len(text) > _MAX_ANSWER_CHARS:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _gateway_message(body: Any) -> str:
    """API Gateway's own refusal text (``{"message": …}``), cut short; ``HTTP 403`` without one."""
    message = body.get("message") if isinstance(body, dict) else None
    return message[:_MAX_GATEWAY_MESSAGE_CHARS] if isinstance(message, str) else "HTTP 403"


def _sign_failed(error: Exception) -> IssuanceError:
    """Nothing could be signed, so nothing was sent: a local, passing problem, not the issuer's."""
    reason = str(error) if isinstance(error, AwsSigningError) else "could not sign the request with AWS credentials"
    failure = IssuanceError("aws_credentials_unavailable", reason)
    failure.__cause__ = error
    return failure


Auth = Union[str, RefreshTokenChain, AsyncRefreshTokenChain, AwsIam]


class _Core:
    """Everything a source decides, without I/O: shared by the sync and the asyncio source."""

    def __init__(
        self,
        issuer: str,
        *,
        request: CredentialRequest | Mapping[str, Any],
        api_key: str | None,
        refresh_token: object,
        aws: AwsIam | bool | None,
        initial: Credential | Mapping[str, Any] | None,
        clock: Callable[[], float],
        random: Callable[[], float],
        skew: float,
        jitter: float,
        timeout: float,
        on_authority_lost: Callable[[AuthorityLoss], None] | None,
        circuit_failures: int,
        backoff_base: float,
        backoff_max: float,
    ) -> None:
        from ._util import fetchable_url, int_option, number_option

        self.base = fetchable_url("issuer", issuer).rstrip("/")
        self.clock = clock
        self.random = random
        self.skew = number_option("skew", skew, 0, 3600)
        self.jitter = number_option("jitter", jitter, 0, 1)
        self.timeout = number_option("timeout", timeout, 0.01, 300)
        self.circuit_failures = int_option("circuit_failures", circuit_failures, 1, 1000)
        self.backoff_base = number_option("backoff_base", backoff_base, 0.001, 3600)
        self.backoff_max = number_option("backoff_max", backoff_max, self.backoff_base, 3600)
        self.on_authority_lost = on_authority_lost
        if not isinstance(request, Mapping) or not isinstance(request.get("tool"), str):
            raise TypeError("request must be a credential request ({'tool': …, 'actions': […]})")
        self.body = json.dumps(dict(request), separators=(",", ":")).encode("utf-8")

        given = [name for name, value in (("api_key", api_key), ("refresh_token", refresh_token), ("aws", aws)) if value not in (None, False)]
        if len(given) != 1:
            raise TypeError("pass exactly one of api_key, refresh_token or aws")
        self.api_key: str | None = None
        self.refresh_token: object = None
        self.aws: AwsIam | None = None
        if api_key is not None:
            if not isinstance(api_key, str) or api_key == "":
                raise TypeError("api_key must be a string")
            self.api_key = api_key
        elif refresh_token is not None:
            self.refresh_token = refresh_token
        else:
            self.aws = aws if isinstance(aws, AwsIam) else AwsIam()
            self.aws.region_for(self.base, "aws")  # fail at start-up, not on the first refresh
        # An instance refreshes on the route that takes refresh tokens (on AWS, /v1/credentials is behind SigV4).
        self.endpoint = self.base + ("/v1/instance/credentials" if refresh_token is not None else "/v1/credentials")

        self.held: _Held | None = None
        self.last_refresh: float | None = None
        self.consecutive_failures = 0
        self.auth_failures = 0
        self.backoff_attempt = 0
        self.next_attempt_at = -math.inf
        self.circuit: Literal["closed", "open"] = "closed"
        self.stopped: IssuanceError | None = None
        self.loss_reported = False
        self.closed = False
        if initial is not None:
            credential = initial if isinstance(initial, Credential) else parse_credential(initial)
            self.held = self.schedule(credential, min(clock(), credential.issued_at.timestamp()))

    # -- the schedule -------------------------------------------------------------------------

    def schedule(self, credential: Credential, anchor: float) -> _Held:
        issued = credential.issued_at.timestamp()
        lifetime = max(0.0, credential.expires_at.timestamp() - issued)
        to_refresh = min(max(0.0, credential.refresh_at.timestamp() - issued), lifetime)
        valid_until = anchor + lifetime - min(self.skew, lifetime * _MAX_SKEW_FRACTION)
        refresh_time = min(anchor + to_refresh - self.random() * self.jitter * to_refresh, valid_until)
        return _Held(credential, valid_until, refresh_time)

    def usable(self, now: float) -> _Held | None:
        return self.held if self.held is not None and now < self.held.valid_until else None

    def lane(self) -> str | None:
        return self.held.credential.lane if self.held is not None else None

    # -- the request --------------------------------------------------------------------------

    def headers(self, bearer: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if bearer is not None:
            headers["authorization"] = f"Bearer {bearer}"
        return headers

    def interpret(self, status: int, headers: httpx.Headers, text: str) -> tuple[Credential, str | None]:
        """A credential and the next refresh token, or the typed error the answer says."""
        lane = self.lane()
        if status == 201:
            answer = _json(text)
            try:
                if not isinstance(answer, dict):
                    raise ValueError("not an object")
                credential = parse_credential(answer)
            except ValueError as cause:
                raise IssuanceError("issuer_unavailable", "the issuer answered with something that is not a credential", status=status, lane=lane) from cause
            following = answer.get("refreshToken")
            return credential, following if isinstance(following, str) else None
        body = _json(text)
        found = body.get("error") if isinstance(body, dict) else None
        error: dict[str, Any] | None = found if isinstance(found, dict) and isinstance(found.get("code"), str) else None
        issuer_code: str | None = error["code"] if error else None
        # API Gateway's IAM authorizer refuses a bad or stale signature with a bare 403
        # (`{"message": …}`, no Lanyard code): an auth failure, never a lost authority.
        gateway_refusal = self.aws is not None and status == 403 and error is None
        code: IssuanceErrorCode
        if issuer_code == "quota_exhausted":
            code = "rate_limited"
        elif gateway_refusal:
            code = "unauthenticated"
        elif issuer_code in _ISSUER_CODES:
            code = issuer_code  # type: ignore[assignment]
        else:
            code = _code_for_status(status)
        message = error.get("message") if error else None
        if gateway_refusal:
            message = f"the API gateway refused the request's AWS signature: {_gateway_message(body)}"
        request_id = error.get("requestId") if error else None
        retryable = error.get("retryable") if error else None
        raise IssuanceError(
            code,
            message if isinstance(message, str) else f"the issuer answered HTTP {status}",
            status=status,
            lane=lane,
            request_id=request_id if isinstance(request_id, str) else None,
            issuer_code=issuer_code if issuer_code is not None and issuer_code != code and issuer_code != "quota_exhausted" else None,
            retryable=retryable if isinstance(retryable, bool) else None,
            retry_after=_parse_retry_after(headers.get("retry-after"), self.clock()),
        )

    # -- the outcomes -------------------------------------------------------------------------

    def stop(self, error: IssuanceError, authority_lost: bool) -> IssuanceError:
        self.stopped = error
        if authority_lost and not self.loss_reported:
            self.loss_reported = True
            if self.on_authority_lost is not None:
                try:
                    self.on_authority_lost(AuthorityLoss(self.lane(), error.code, error.message))
                except Exception:  # the callback's own failure must not hide the stop from the caller
                    logger.exception("lanyard: on_authority_lost raised")
        return error

    def backoff_delay(self) -> float:
        self.backoff_attempt += 1
        cap: float = min(self.backoff_max, self.backoff_base * 2.0 ** min(self.backoff_attempt - 1, 30))
        return self.random() * cap

    def wait_before_refresh(self) -> float:
        """Seconds to wait out a backoff before asking, when no usable credential is held."""
        now = self.clock()
        return self.next_attempt_at - now if self.next_attempt_at > now and self.usable(now) is None else 0.0

    def succeeded(self, credential: Credential, sent_at: float) -> None:
        # The issuer counts the lifetime from `issuedAt`, truncated to the second: anchor there,
        # but never after the request left nor more than a second before it.
        issued = credential.issued_at.timestamp()
        self.held = self.schedule(credential, min(sent_at, max(issued, sent_at - 1.0)))
        self.last_refresh = self.clock()
        self.consecutive_failures = 0
        self.auth_failures = 0
        self.backoff_attempt = 0
        self.next_attempt_at = -math.inf

    def failed(self, error: IssuanceError) -> IssuanceError:
        """Records a failed refresh; returns the error to raise."""
        if error.code == "source_closed":
            return error
        self.consecutive_failures += 1
        if error.code in AUTHORITY_LOST:
            return self.stop(error, True)
        if error.code == "unauthenticated":
            self.auth_failures += 1
            # A refused refresh token never becomes valid again; presenting it again would look like theft.
            if self.refresh_token is not None:
                return self.stop(error, True)
            if self.auth_failures >= self.circuit_failures:
                self.circuit = "open"
            return error
        if error.code == "rate_limited":
            delay = (error.retry_after if error.retry_after is not None else self.backoff_delay()) + self.random() * self.backoff_base
            self.next_attempt_at = self.clock() + delay
            return error.with_retry_after(delay)
        if error.code in ("issuer_unavailable", "aws_credentials_unavailable"):
            delay = max(self.backoff_delay(), error.retry_after or 0.0)
            self.next_attempt_at = self.clock() + delay
            return error.with_retry_after(delay)
        return self.stop(error, False)

    def refusal(self) -> IssuanceError | None:
        return _closed() if self.closed else self.stopped

    def before_refresh(self, force: bool) -> Credential | None:
        """The credential to hand out without asking the issuer, or ``None`` to refresh; raises
        when the source is stopped or its circuit is open."""
        refused = self.refusal()
        if refused is not None:
            raise refused
        now = self.clock()
        current = self.usable(now)
        if not force and current is not None and now < current.refresh_time:
            return current.credential
        if self.circuit == "open":
            if current is not None and not force:
                return current.credential
            lane = self.lane()
            raise IssuanceError("circuit_open", "the issuer refused this source's authentication repeatedly; call reset() once fixed", lane=lane)
        # Backing off: the credential in hand is still good, so the issuer is left alone.
        if current is not None and not force and now < self.next_attempt_at:
            return current.credential
        return None

    def after_failure(self, error: IssuanceError) -> Credential:
        """A transient failure while the current credential is still usable hands it out."""
        still = self.usable(self.clock())
        if still is not None and self.refusal() is None and self.circuit == "closed" and error.code in TRANSIENT_CODES:
            return still.credential
        raise error

    def report_authority_lost(self, code: IssuanceErrorCode, message: str) -> None:
        if self.closed or self.stopped is not None:
            return
        self.stop(IssuanceError(code, message, lane=self.lane()), code in AUTHORITY_LOST)

    def state(self) -> SourceState:
        held = self.held
        return SourceState(
            valid_until=held.valid_until if held else None,
            next_refresh=max(held.refresh_time, self.next_attempt_at) if held else None,
            last_refresh=self.last_refresh,
            consecutive_failures=self.consecutive_failures,
            consecutive_auth_failures=self.auth_failures,
            circuit=self.circuit,
            stopped=self.stopped.code if self.stopped else None,
        )

    def reset(self) -> None:
        if self.closed:
            return
        self.circuit = "closed"
        self.stopped = None
        self.loss_reported = False
        self.consecutive_failures = 0
        self.auth_failures = 0
        self.backoff_attempt = 0
        self.next_attempt_at = -math.inf


def _unreachable(error: Exception) -> IssuanceError:
    failure = IssuanceError("issuer_unavailable", "the issuer could not be reached")
    failure.__cause__ = error
    return failure


class _Flight:
    """One refresh that several threads wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Credential | None = None
        self.error: BaseException | None = None


class CredentialSource:
    """A credential source for one lane, for threads and plain scripts (see the module doc).

    Create it once per lane and agent, and call :meth:`get` before each call the credential is for.

    >>> source = CredentialSource(
    ...     "https://lanyard.example",
    ...     refresh_token=os.environ["LANYARD_REFRESH_TOKEN"],
    ...     request={"tool": "tickets", "actions": ["tickets:read"], "tenant": "acme"},
    ...     on_authority_lost=lambda loss: orchestrator.report(loss.lane, loss.code),
    ... )
    >>> token = source.get().token
    """

    def __init__(
        self,
        issuer: str,
        *,
        request: CredentialRequest | Mapping[str, Any],
        api_key: str | None = None,
        refresh_token: str | RefreshTokenChain | None = None,
        aws: AwsIam | bool | None = None,
        initial: Credential | Mapping[str, Any] | None = None,
        on_authority_lost: Callable[[AuthorityLoss], None] | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        skew: float = 30.0,
        jitter: float = 0.2,
        timeout: float = 10.0,
        circuit_failures: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        chain: RefreshTokenChain | None = None
        if refresh_token is not None:
            if isinstance(refresh_token, AsyncRefreshTokenChain):
                raise TypeError("CredentialSource needs a RefreshTokenChain (AsyncRefreshTokenChain is for AsyncCredentialSource)")
            chain = refresh_token if isinstance(refresh_token, RefreshTokenChain) else RefreshTokenChain(refresh_token)
        self._core = _Core(
            issuer, request=request, api_key=api_key, refresh_token=chain, aws=aws, initial=initial, clock=clock, random=random,
            skew=skew, jitter=jitter, timeout=timeout, on_authority_lost=on_authority_lost, circuit_failures=circuit_failures,
            backoff_base=backoff_base, backoff_max=backoff_max,
        )
        self._chain = chain
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._inflight: _Flight | None = None
        self._closing = threading.Event()

    # -- public ---------------------------------------------------------------------------------

    def get(self) -> Credential:
        """A credential that is valid now, refreshed first when its refresh time has come."""
        return self._get(False)

    def refresh(self) -> Credential:
        """Refreshes now (one flight shared with :meth:`get`), e.g. after a resource server said
        ``token_expired``."""
        return self._get(True)

    def report_authority_lost(self, code: IssuanceErrorCode, message: str) -> None:
        """Tells the source a resource server refused its credential as revoked: it stops at once."""
        self._core.report_authority_lost(code, message)

    def state(self) -> SourceState:
        return self._core.state()

    def reset(self) -> None:
        """Closes the circuit and clears a stop, so the issuer is asked again (an operator's decision)."""
        self._core.reset()

    def close(self) -> None:
        """Stops for good: later calls raise ``source_closed``."""
        self._core.closed = True
        self._closing.set()
        if self._own_client:
            self._client.close()

    def __enter__(self) -> CredentialSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _get(self, force: bool) -> Credential:
        held = self._core.before_refresh(force)
        if held is not None:
            return held
        try:
            return self._refresh_shared()
        except IssuanceError as error:
            return self._core.after_failure(error)

    def _refresh_shared(self) -> Credential:
        with self._lock:
            flight = self._inflight
            leader = flight is None
            if flight is None:
                flight = self._inflight = _Flight()
        if leader:
            try:
                flight.result = self._refresh_once()
            except BaseException as error:  # handed to every waiter
                flight.error = error
            finally:
                with self._lock:
                    self._inflight = None
                flight.done.set()
        else:
            flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.result is not None
        return flight.result

    def _refresh_once(self) -> Credential:
        core = self._core
        wait = core.wait_before_refresh()
        if wait > 0 and self._closing.wait(wait):
            raise _closed()
        if core.closed:
            raise _closed()
        sent_at = core.clock()
        try:
            credential = self._call()
        except IssuanceError as error:
            raise core.failed(error) from error.__cause__
        if core.closed:
            raise _closed()
        core.succeeded(credential, sent_at)
        return credential

    def _call(self) -> Credential:
        core = self._core
        if self._chain is not None:
            return self._chain.use(lambda token: core.interpret(*self._post(core.headers(token))))
        if core.aws is not None:
            aws = core.aws
            try:
                headers = aws.sign("POST", core.endpoint, core.headers(None), core.body)
            except Exception as error:  # botocore's credential chain failing is a local problem, not the issuer's
                raise _sign_failed(error) from error
            return core.interpret(*self._post(headers))[0]
        return core.interpret(*self._post(core.headers(core.api_key)))[0]

    def _post(self, headers: dict[str, str]) -> tuple[int, httpx.Headers, str]:
        try:
            response = self._client.post(self._core.endpoint, content=self._core.body, headers=headers, timeout=self._core.timeout, follow_redirects=False)
            return response.status_code, response.headers, response.text
        except (httpx.HTTPError, OSError, RuntimeError) as error:
            if self._core.closed:
                raise _closed() from error
            raise _unreachable(error) from error


class AsyncCredentialSource:
    """The asyncio twin of :class:`CredentialSource` (same options, ``await`` its methods).

    >>> source = AsyncCredentialSource(issuer, api_key=key, request={"tool": "tickets", "actions": ["tickets:read"]})
    >>> token = (await source.get()).token
    """

    def __init__(
        self,
        issuer: str,
        *,
        request: CredentialRequest | Mapping[str, Any],
        api_key: str | None = None,
        refresh_token: str | AsyncRefreshTokenChain | None = None,
        aws: AwsIam | bool | None = None,
        initial: Credential | Mapping[str, Any] | None = None,
        on_authority_lost: Callable[[AuthorityLoss], None] | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        skew: float = 30.0,
        jitter: float = 0.2,
        timeout: float = 10.0,
        circuit_failures: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        chain: AsyncRefreshTokenChain | None = None
        if refresh_token is not None:
            if isinstance(refresh_token, RefreshTokenChain):
                raise TypeError("AsyncCredentialSource needs an AsyncRefreshTokenChain (RefreshTokenChain is for CredentialSource)")
            chain = refresh_token if isinstance(refresh_token, AsyncRefreshTokenChain) else AsyncRefreshTokenChain(refresh_token)
        self._core = _Core(
            issuer, request=request, api_key=api_key, refresh_token=chain, aws=aws, initial=initial, clock=clock, random=random,
            skew=skew, jitter=jitter, timeout=timeout, on_authority_lost=on_authority_lost, circuit_failures=circuit_failures,
            backoff_base=backoff_base, backoff_max=backoff_max,
        )
        self._chain = chain
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._inflight: asyncio.Future[Credential] | None = None
        self._closing: asyncio.Event | None = None

    async def get(self) -> Credential:
        """A credential that is valid now, refreshed first when its refresh time has come."""
        return await self._get(False)

    async def refresh(self) -> Credential:
        """Refreshes now (one flight shared with :meth:`get`)."""
        return await self._get(True)

    def report_authority_lost(self, code: IssuanceErrorCode, message: str) -> None:
        self._core.report_authority_lost(code, message)

    def state(self) -> SourceState:
        return self._core.state()

    def reset(self) -> None:
        self._core.reset()

    async def aclose(self) -> None:
        """Stops for good: later calls raise ``source_closed``."""
        self._core.closed = True
        if self._closing is not None:
            self._closing.set()
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncCredentialSource:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _get(self, force: bool) -> Credential:
        held = self._core.before_refresh(force)
        if held is not None:
            return held
        try:
            return await self._refresh_shared()
        except IssuanceError as error:
            return self._core.after_failure(error)

    async def _refresh_shared(self) -> Credential:
        flight = self._inflight
        if flight is None:
            flight = self._inflight = asyncio.ensure_future(self._refresh_once())

            def landed(done: asyncio.Future[Credential]) -> None:
                if self._inflight is done:
                    self._inflight = None
                if not done.cancelled():
                    done.exception()  # retrieved: every waiter may have been cancelled

            flight.add_done_callback(landed)
        # Shielded: one caller giving up must not cancel the refresh the others wait for.
        return await asyncio.shield(flight)

    async def _refresh_once(self) -> Credential:
        core = self._core
        wait = core.wait_before_refresh()
        if wait > 0:
            if self._closing is None:
                self._closing = asyncio.Event()
            try:
                await asyncio.wait_for(self._closing.wait(), wait)
                raise _closed()
            except asyncio.TimeoutError:
                pass
        if core.closed:
            raise _closed()
        sent_at = core.clock()
        try:
            credential = await self._call()
        except IssuanceError as error:
            raise core.failed(error) from error.__cause__
        if core.closed:
            raise _closed()
        core.succeeded(credential, sent_at)
        return credential

    async def _call(self) -> Credential:
        core = self._core
        if self._chain is not None:

            async def use(token: str) -> tuple[Credential, str | None]:
                return core.interpret(*await self._post(core.headers(token)))

            return await self._chain.use(use)
        if core.aws is not None:
            aws = core.aws
            try:
                # botocore's credential chain may block (instance metadata, SSO): off the event loop.
                headers = await asyncio.to_thread(aws.sign, "POST", core.endpoint, core.headers(None), core.body)
            except Exception as error:
                raise _sign_failed(error) from error
            return core.interpret(*await self._post(headers))[0]
        return core.interpret(*await self._post(core.headers(core.api_key)))[0]

    async def _post(self, headers: dict[str, str]) -> tuple[int, httpx.Headers, str]:
        try:
            response = await self._client.post(self._core.endpoint, content=self._core.body, headers=headers, timeout=self._core.timeout, follow_redirects=False)
            return response.status_code, response.headers, response.text
        except (httpx.HTTPError, OSError, RuntimeError) as error:
            if self._core.closed:
                raise _closed() from error
            raise _unreachable(error) from error
