"""Follows the issuer's revocations so a verifier can refuse a revoked token without a network
call per request (the TypeScript SDK's rules):

- the first sync pages through ``GET <issuer>/v1/revocations`` until ``hasMore`` is false; until
  it has succeeded once the follower is not ``synced`` and the verifier fails closed
  (``verifier_unavailable``);
- ``mode="poll"`` then re-reads the feed from the cursor every ``poll_interval`` seconds;
- the feed is read with the verifier principal's API key (``api_key``), or, on AWS, with SigV4
  as the resource server's IAM role (``aws=AwsIam(…)``, poll only: a deployed stack has no
  event stream), signed by the same code as the agent side's IAM mode;
- ``mode="stream"`` reads ``GET <issuer>/v1/events`` (server-sent events), reconnects with
  exponential backoff and ``Last-Event-ID``, and after every (re)connect re-reads the feed from
  the cursor, so nothing published while disconnected is lost. A stream silent for
  ``idle_timeout`` (no event, no keep-alive) is treated as dead and reconnected;
- the follower is ``fresh`` while less than ``max_staleness`` has passed since its last contact
  with the issuer (a feed read to its end, or bytes of a connected stream after its gap-fill);
- revocations are kept by ``targetKey`` with the latest cut-off, and dropped once
  ``relevantUntil`` has passed; a lookup is at most nine dict reads.

The follower runs in one daemon thread, for the sync and the asyncio verifier alike: the hot
path only reads its dict.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import httpx

from ._sse import SseEvent, SseParser
from ._util import fetchable_url, int_option, number_option, parse_instant
from .errors import RevokedTarget, VerificationError
from .iam import AwsIam, signable_url

logger = logging.getLogger("lanyard")

_TARGET_TYPES = ("credential", "lane", "identity", "tenant", "tool", "key")
_REVOCATION_EVENTS = frozenset(
    {"Credential Revoked", "Lane Revoked", "Identity Revoked", "Tenant Revoked", "Tool Disabled", "Signing Key Revoked"}
)
_MAX_PAGES_PER_SYNC = 10_000
_SWEEP_INTERVAL = 60.0


@dataclass(frozen=True)
class _Entry:
    target: RevokedTarget
    #: Cut-off in whole seconds (floor): `iat` has one-second resolution.
    cutoff_seconds: int
    relevant_until: float


def _warn(error: Exception) -> None:
    logger.warning("lanyard: revocation follower: %s", error)


class RevocationFollower:
    """Create it once; the :class:`~lanyard.Verifier` makes one for you."""

    def __init__(
        self,
        issuer: str,
        *,
        api_key: str | None = None,
        aws: AwsIam | None = None,
        mode: Literal["stream", "poll"],
        poll_interval: float = 5.0,
        max_staleness: float = 120.0,
        page_limit: int = 500,
        timeout: float = 5.0,
        idle_timeout: float = 90.0,
        min_retry_delay: float = 0.25,
        max_retry_delay: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_key_rotated: Callable[[], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        if mode not in ("stream", "poll"):
            raise TypeError('revocations mode must be "stream", "poll" or "off"')
        base = fetchable_url("issuer", issuer).rstrip("/")
        self._feed_url = f"{base}/v1/revocations"
        self._events_url = f"{base}/v1/events"
        self._mode = mode
        self._authorization: str | None = None
        self._aws: AwsIam | None = None
        if aws is not None and api_key is not None:
            raise TypeError("revocations takes exactly one of api_key (a verifier key) and aws (SigV4 as an IAM role)")
        if aws is not None:
            if not isinstance(aws, AwsIam):
                raise TypeError("revocations.aws must be an AwsIam(…)")
            if mode != "poll":
                raise TypeError('revocations.aws needs mode "poll": a stack on AWS has no event stream')
            aws.region_for(self._feed_url, "revocations.aws")  # fail at start-up, not on the first poll
            self._aws = aws
        elif isinstance(api_key, str) and api_key != "":
            self._authorization = f"Bearer {api_key}"
        else:
            raise TypeError("revocations api_key is required to read the revocation feed (or aws=AwsIam(…) for a stack on AWS)")
        self._clock = clock
        self._poll_interval = number_option("poll_interval", poll_interval, 0.1, 300)
        self._max_staleness = number_option("max_staleness", max_staleness, 30, 3600)
        if mode == "poll" and self._max_staleness < 2 * self._poll_interval:
            # Otherwise one slow poll would make a healthy follower stale.
            raise TypeError("max_staleness must be at least twice poll_interval")
        self._page_limit = int_option("page_limit", page_limit, 1, 10_000)
        self._timeout = number_option("timeout", timeout, 0.1, 60)
        self._idle_timeout = number_option("idle_timeout", idle_timeout, 0.1, 3600)
        self._min_retry_delay = number_option("min_retry_delay", min_retry_delay, 0.001, 60)
        self._max_retry_delay = number_option("max_retry_delay", max_retry_delay, self._min_retry_delay, 3600)
        self._on_key_rotated = on_key_rotated or (lambda: None)
        self._on_error = on_error or _warn

        self._entries: dict[str, _Entry] = {}
        self._next_sweep_at = 0.0
        self._cursor: str | None = None
        self._last_event_id: str | None = None
        self._synced = False
        self._last_contact_at: float | None = None
        self._retry_delay = self._min_retry_delay
        self._closing = threading.Event()
        self._changed = threading.Condition()
        self._attempts_failed = 0
        self._last_failure: Exception | None = None
        self._thread: threading.Thread | None = None
        self._client = httpx.Client()
        self._response: httpx.Response | None = None

    # -- state ----------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True once the feed has been read to the end at least once."""
        return self._synced

    @property
    def last_contact_at(self) -> float | None:
        return self._last_contact_at

    @property
    def fresh(self) -> bool:
        """True while synced and less than ``max_staleness`` has passed since the last contact."""
        contact = self._last_contact_at
        return self._synced and contact is not None and self._clock() - contact < self._max_staleness

    def start(self) -> None:
        """Starts following (idempotent)."""
        with self._changed:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="lanyard-revocations", daemon=True)
            self._thread.start()

    def ready(self, timeout: float | None = None) -> None:
        """Starts following and returns once the first sync is done. Raises
        ``verifier_unavailable`` when the sync attempt under way fails (the follower keeps retrying)."""
        self.start()
        with self._changed:
            failed_before = self._attempts_failed
            self._changed.wait_for(lambda: self._synced or self._attempts_failed > failed_before or self._closing.is_set(), timeout)
            if self._synced:
                return
            error = VerificationError("verifier_unavailable", "revocations could not be synchronised")
            error.__cause__ = self._last_failure
            raise error

    def close(self) -> None:
        """Stops polling / closes the stream."""
        self._closing.set()
        with self._changed:
            self._changed.notify_all()
        response = self._response
        if response is not None:
            try:
                response.close()  # wakes a read blocked on the stream
            except Exception:  # noqa: BLE001 - closing from another thread is best effort
                pass

    # -- revocations ----------------------------------------------------------------------------

    def apply(self, revocation: Mapping[str, Any]) -> None:
        """Records a revocation (idempotent; keeps the latest cut-off per target); raises ``ValueError``."""
        target_type, target_key = revocation.get("targetType"), revocation.get("targetKey")
        if target_type not in _TARGET_TYPES or not isinstance(target_key, str) or not target_key.startswith(f"{target_type}:"):
            raise ValueError(f"revocation {revocation.get('id')}: targetKey does not match targetType")
        cutoff, relevant_until = parse_instant(revocation.get("cutoff")), parse_instant(revocation.get("relevantUntil"))
        if cutoff is None or relevant_until is None:
            raise ValueError(f"revocation {revocation.get('id')}: cutoff and relevantUntil must be ISO-8601 dates")
        if relevant_until <= self._clock():
            return
        cutoff_seconds = math.floor(cutoff)
        previous = self._entries.get(target_key)
        self._entries[target_key] = _Entry(
            RevokedTarget(target_type, target_key),
            max(cutoff_seconds, previous.cutoff_seconds) if previous else cutoff_seconds,
            max(relevant_until, previous.relevant_until) if previous else relevant_until,
        )

    def _apply_unknown(self, value: object) -> None:
        try:
            if not isinstance(value, dict):
                raise ValueError("not an object")
            self.apply(value)
        except ValueError as error:  # one unreadable entry must not stop the others
            self._on_error(ValueError(f"skipped an unreadable revocation: {error}"))

    def _sweep(self, now: float) -> None:
        self._next_sweep_at = now + _SWEEP_INTERVAL
        for key in [key for key, entry in self._entries.items() if entry.relevant_until <= now]:
            self._entries.pop(key, None)

    def is_revoked(self, claims: Mapping[str, Any], kid: str) -> RevokedTarget | None:
        """The revocation that kills this token, if any."""
        if not self._entries:
            return None
        now = self._clock()
        if now >= self._next_sweep_at:
            self._sweep(now)
        # Conservative: a token issued in the same second as the cut-off counts as revoked.
        iat = math.floor(claims["iat"])
        entries = self._entries

        def check(key: str) -> RevokedTarget | None:
            entry = entries.get(key)
            return entry.target if entry is not None and iat <= entry.cutoff_seconds and now < entry.relevant_until else None

        sub: str = claims["sub"]
        lane: str = claims["lane"]
        # Revoking a class identity (`support-triage/prod`) covers its instances (`…#inst1`).
        identity_class = sub.split("#", 1)[0] if "#" in sub else None
        lane_parts = lane.split(":")
        tool = lane_parts[1] if len(lane_parts) > 2 and lane_parts[1] else None
        tenant = claims.get("tenant")
        keys = [f"credential:{claims['jti']}", f"lane:{lane}", f"identity:{sub}"]
        if identity_class is not None:
            keys.append(f"identity:{identity_class}")
        if isinstance(tenant, str):
            keys.append(f"tenant:{tenant}")
        if tool is not None:
            keys += [f"tool:{tool}", f"tool:{tool}@{sub}"]
            if identity_class is not None:
                keys.append(f"tool:{tool}@{identity_class}")
        keys.append(f"key:{kid}")
        for key in keys:
            target = check(key)
            if target is not None:
                return target
        return None

    # -- the thread -----------------------------------------------------------------------------

    def _sync_feed(self) -> None:
        for _ in range(_MAX_PAGES_PER_SYNC):
            params = {"limit": str(self._page_limit)}
            if self._cursor is not None:
                params["after"] = self._cursor
            # The URL is built once, so what is signed is exactly what is sent.
            url = signable_url(self._feed_url, params)
            asked_at = self._clock()
            response = self._client.get(url, headers=self._feed_headers(url), timeout=self._timeout, follow_redirects=False)
            if response.status_code != 200:
                raise RuntimeError(f"revocation feed answered HTTP {response.status_code}")
            page = response.json()
            if not isinstance(page, dict) or not isinstance(page.get("revocations"), list) or not isinstance(page.get("cursor"), str) or not isinstance(page.get("hasMore"), bool):
                raise ValueError("revocation feed answered something that is not a page")
            for revocation in page["revocations"]:
                self._apply_unknown(revocation)
            self._cursor = page["cursor"]
            if not page["hasMore"]:
                # Read to the end: every revocation published before this page was asked for is known.
                self._last_contact_at = asked_at
                self._sweep(self._clock())
                return
        raise RuntimeError("revocation feed did not end")

    def _feed_headers(self, url: str) -> dict[str, str]:
        """A bearer, or (IAM) the SigV4 signature over this very GET; the signing runs in the
        follower's thread, so botocore's chain may take its time without holding up requests."""
        headers = {"accept": "application/json"}
        if self._aws is not None:
            return self._aws.sign("GET", url, headers)
        assert self._authorization is not None
        return {**headers, "authorization": self._authorization}

    def _on_event(self, event: SseEvent) -> None:
        self._last_event_id = event.id
        try:
            parsed = json.loads(event.data)
            detail_type = parsed["detailType"]
            if not isinstance(detail_type, str):
                raise ValueError("detailType is not a string")
        except (ValueError, KeyError, TypeError) as error:
            self._on_error(ValueError(f"skipped an unreadable event: {error}"))
            return
        if detail_type in _REVOCATION_EVENTS:
            detail = parsed.get("detail")
            if isinstance(detail, dict) and "revocation" in detail:
                self._apply_unknown(detail["revocation"])
            else:
                self._on_error(ValueError(f'skipped a "{detail_type}" event without a revocation'))
        elif detail_type == "Signing Key Rotated":
            self._on_key_rotated()
        # Anything else (`Target Reinstated`, `Grant Changed` …) is not ours to act on:
        # reinstating a target never revives tokens issued before its cut-off.

    def _stream_once(self) -> None:
        assert self._authorization is not None  # stream mode always has a key (checked at construction)
        headers = {"authorization": self._authorization, "accept": "text/event-stream", "cache-control": "no-store"}
        if self._last_event_id is not None:
            headers["last-event-id"] = self._last_event_id
        # The read timeout is the idle timeout: a stream silent that long is dead.
        timeout = httpx.Timeout(self._timeout, read=self._idle_timeout)
        with self._client.stream("GET", self._events_url, headers=headers, timeout=timeout, follow_redirects=False) as response:
            self._response = response
            try:
                if response.status_code != 200:
                    raise RuntimeError(f"event stream answered HTTP {response.status_code}")
                # Connected: read the feed from the cursor to fill the gap since the last sync.
                self._sync_feed()
                self._retry_delay = self._min_retry_delay
                parser = SseParser(self._on_event, self._last_event_id)
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                for chunk in response.iter_bytes():
                    if self._closing.is_set():
                        return
                    # The stream is live and in order: what was published before these bytes has arrived.
                    self._last_contact_at = self._clock()
                    parser.push(decoder.decode(chunk))
                raise RuntimeError("event stream ended")
            finally:
                self._response = None

    def _pause(self) -> None:
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, self._max_retry_delay)
        # Jitter so a fleet of verifiers does not reconnect in lock-step after an issuer restart.
        self._closing.wait(delay / 2 + random.random() * delay / 2)

    def _run(self) -> None:
        try:
            while not self._synced and not self._closing.is_set():
                try:
                    self._sync_feed()
                    with self._changed:
                        self._synced = True
                        self._changed.notify_all()
                    self._retry_delay = self._min_retry_delay
                except Exception as error:  # noqa: BLE001 - every failure is retried
                    if self._closing.is_set():
                        return
                    with self._changed:
                        self._last_failure = error
                        self._attempts_failed += 1
                        self._changed.notify_all()
                    self._on_error(RuntimeError(f"revocation feed sync failed: {error}"))
                    self._pause()
            while not self._closing.is_set():
                try:
                    if self._mode == "poll":
                        if self._closing.wait(self._poll_interval):
                            return
                        self._sync_feed()
                    else:
                        self._stream_once()
                except Exception as error:  # noqa: BLE001
                    if self._closing.is_set():
                        return
                    what = "poll" if self._mode == "poll" else "event stream"
                    self._on_error(RuntimeError(f"revocation {what} failed: {error}"))
                    if self._mode == "stream":
                        self._pause()
        finally:
            self._client.close()
