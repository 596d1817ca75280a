/**
 * The schedule of a credential source (credential-source.ts) as a pure state machine: when to
 * hand out the credential in hand, when to ask the issuer, how long to back off, when to open
 * the circuit and when to stop for good. `next(state, event, now)` returns the new state and
 * the one action the driver takes; it never fetches, sleeps, reads a clock or draws a random
 * number (the driver passes the time and the draws in), so every transition is tested as a
 * plain function (test/sdk/refresh-schedule.test.ts).
 *
 * The driver sends:
 * - `get` (a caller wants a credential; `force` for `refresh()`): hand out the one in hand,
 *   refuse (closed, stopped, circuit open), or refresh (one flight, however many callers);
 * - `flight` (a refresh starts): how long to wait out a backoff first;
 * - `answered` / `failed` (the issuer's outcome of that flight);
 * - `flight_failed` (each caller that waited on a failed flight): still hand out a usable
 *   credential after a transient failure, or throw;
 * - `authority_reported`, `reset`, `close` (the source's own methods).
 */
import { IssuanceError } from './errors.ts';
import type { IssuanceErrorCode } from './errors.ts';

/** What the schedule needs to know of a credential: its times and its lane. */
export interface ScheduledCredential {
  readonly lane: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly refreshAt: string;
}

/** A credential in hand, with when it stops being handed out and when it is refreshed (source clock). */
export interface Held<C extends ScheduledCredential> {
  readonly credential: C;
  readonly validUntil: number;
  readonly refreshTime: number;
}

/** The fixed parameters of one source, checked by `createCredentialSource`. */
export interface ScheduleConfig {
  /** Margin before expiry within which a credential is no longer handed out (capped at a tenth of the lifetime). */
  readonly skewMs: number;
  /** Fraction of the time from issue to `refreshAt` over which refreshes are spread. */
  readonly jitter: number;
  /** Consecutive `unauthenticated` answers that open the circuit. */
  readonly circuitFailures: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** The source presents refresh tokens: a refused one is refused for good, so the first `unauthenticated` stops. */
  readonly refreshTokens: boolean;
}

export interface ScheduleState<C extends ScheduledCredential> {
  readonly config: ScheduleConfig;
  readonly held?: Held<C>;
  readonly lastRefresh?: number;
  /** Failed refreshes in a row, of any kind. */
  readonly consecutiveFailures: number;
  /** `unauthenticated` answers in a row. */
  readonly authFailures: number;
  /** Backoff steps taken since the last success (the exponent of the next delay). */
  readonly backoffAttempt: number;
  /** No refresh before this instant (a backoff or `Retry-After`); −∞ when none. */
  readonly nextAttemptAt: number;
  readonly circuit: 'closed' | 'open';
  /** The error the source stopped with, until `reset`. */
  readonly stopped?: IssuanceError;
  /** `onAuthorityLost` was called since the last `reset` (it is called once). */
  readonly lossReported: boolean;
  readonly closed: boolean;
}

/** Random draws in [0, 1) the driver passes with a failure; only a backoff uses them. */
export interface BackoffDraws {
  /** The full-jitter draw of an exponential backoff. */
  readonly backoff: number;
  /** The spread added on top of a `rate_limited` wait. */
  readonly spread: number;
}

export type ScheduleEvent<C extends ScheduledCredential> =
  | { readonly type: 'get'; readonly force: boolean }
  | { readonly type: 'flight' }
  | {
      readonly type: 'answered';
      readonly credential: C;
      /** The source-clock instant the lifetime counts from. */
      readonly anchor: number;
      /** Uniform in [0, 1): where in the jitter window the refresh falls. */
      readonly draw: number;
    }
  | {
      readonly type: 'failed';
      readonly error: IssuanceError;
      readonly draws: BackoffDraws;
      /** Only a change of configuration can fix this (e.g. no AWS SDK package): stop, uncounted. */
      readonly final?: boolean;
    }
  | { readonly type: 'flight_failed'; readonly error: IssuanceError }
  | { readonly type: 'authority_reported'; readonly code: IssuanceErrorCode; readonly message: string }
  | { readonly type: 'reset' }
  | { readonly type: 'close' };

/** What `onAuthorityLost` is told. */
export interface AuthorityLossReport {
  readonly lane?: string;
  readonly code: IssuanceErrorCode;
  readonly message: string;
}

export type ScheduleAction<C extends ScheduledCredential> =
  | { readonly type: 'hand_out'; readonly credential: C }
  | { readonly type: 'refuse'; readonly error: IssuanceError }
  | { readonly type: 'refresh' }
  | { readonly type: 'call'; readonly waitMs: number }
  /** Throw `error` to the flight's callers, after telling the orchestrator of `loss` when set. */
  | { readonly type: 'throw'; readonly error: IssuanceError; readonly loss?: AuthorityLossReport }
  | { readonly type: 'report'; readonly loss?: AuthorityLossReport }
  | { readonly type: 'none' };

export interface Transition<C extends ScheduledCredential> {
  readonly state: ScheduleState<C>;
  readonly action: ScheduleAction<C>;
}

/** The authority is gone: stop the lane, tell the orchestrator. */
export const AUTHORITY_LOST_CODES: ReadonlySet<IssuanceErrorCode> = new Set<IssuanceErrorCode>([
  'credential_revoked', 'lane_revoked', 'identity_revoked', 'tenant_revoked', 'tool_disabled', 'not_granted', 'kind_not_allowed', 'forbidden',
]);
/** Failures a later attempt may not see: backed off, and a usable credential is still handed out. */
const TRANSIENT_CODES: ReadonlySet<IssuanceErrorCode> = new Set<IssuanceErrorCode>(['issuer_unavailable', 'rate_limited', 'aws_credentials_unavailable']);
/** The most a source ever trusts of a lifetime before refreshing, whatever `refreshAt` says. */
const MAX_SKEW_FRACTION = 0.1;

export function initialState<C extends ScheduledCredential>(config: ScheduleConfig, held?: Held<C>): ScheduleState<C> {
  return {
    config,
    ...(held && { held }),
    consecutiveFailures: 0,
    authFailures: 0,
    backoffAttempt: 0,
    nextAttemptAt: Number.NEGATIVE_INFINITY,
    circuit: 'closed',
    lossReported: false,
    closed: false,
  };
}

/**
 * When a credential stops being handed out (its lifetime from `anchor`, less the skew) and
 * when it is refreshed (`draw` places it in the jitter window before `refreshAt`, never after
 * `validUntil`).
 */
export function scheduleCredential<C extends ScheduledCredential>(config: ScheduleConfig, credential: C, anchor: number, draw: number): Held<C> {
  const issued = Date.parse(credential.issuedAt);
  const lifetime = Math.max(0, Date.parse(credential.expiresAt) - issued);
  const toRefreshAt = Math.min(Math.max(0, Date.parse(credential.refreshAt) - issued), lifetime);
  const validUntil = anchor + lifetime - Math.min(config.skewMs, lifetime * MAX_SKEW_FRACTION);
  const refreshTime = Math.min(anchor + toRefreshAt - draw * config.jitter * toRefreshAt, validUntil);
  return { credential, validUntil, refreshTime };
}

/** The credential in hand when it may still be handed out at `now`. */
export function usable<C extends ScheduledCredential>(state: ScheduleState<C>, now: number): Held<C> | undefined {
  return state.held && now < state.held.validUntil ? state.held : undefined;
}

/** Why every call is refused now: closed, or stopped for good. */
export function refusal(state: ScheduleState<ScheduledCredential>): IssuanceError | undefined {
  return state.closed ? sourceClosed() : state.stopped;
}

export function sourceClosed(): IssuanceError {
  return new IssuanceError('source_closed', 'the credential source is closed');
}

/** The one transition function: the new state and the driver's next action. */
export function next<C extends ScheduledCredential>(state: ScheduleState<C>, event: ScheduleEvent<C>, now: number): Transition<C> {
  switch (event.type) {
    case 'get':
      return { state, action: onGet(state, event.force, now) };
    case 'flight':
      return { state, action: onFlight(state, now) };
    case 'answered':
      return onAnswered(state, event.credential, event.anchor, event.draw, now);
    case 'failed':
      return onFailed(state, event.error, event.draws, event.final === true, now);
    case 'flight_failed':
      return { state, action: onFlightFailed(state, event.error, now) };
    case 'authority_reported':
      return onAuthorityReported(state, event.code, event.message);
    case 'reset':
      return { state: onReset(state), action: { type: 'none' } };
    case 'close':
      return { state: { ...state, closed: true }, action: { type: 'none' } };
  }
}

/** Decides a caller's `get()`: the credential in hand while it is fresh (or while backing off or the circuit is open), else a refresh. */
function onGet<C extends ScheduledCredential>(state: ScheduleState<C>, force: boolean, now: number): ScheduleAction<C> {
  const refused = refusal(state);
  if (refused) return { type: 'refuse', error: refused };
  const current = usable(state, now);
  if (!force && current && now < current.refreshTime) return { type: 'hand_out', credential: current.credential };
  if (state.circuit === 'open') {
    if (current && !force) return { type: 'hand_out', credential: current.credential };
    return {
      type: 'refuse',
      error: new IssuanceError('circuit_open', 'the issuer refused this source\'s authentication repeatedly; call reset() once fixed', laneOf(state)),
    };
  }
  // Backing off: the credential in hand is still good, so the issuer is left alone.
  if (current && !force && now < state.nextAttemptAt) return { type: 'hand_out', credential: current.credential };
  return { type: 'refresh' };
}

/** Decides how long a starting flight waits: out the backoff, but only when there is no usable credential to hand out meanwhile. */
function onFlight<C extends ScheduledCredential>(state: ScheduleState<C>, now: number): ScheduleAction<C> {
  if (state.closed) return { type: 'refuse', error: sourceClosed() };
  const wait = state.nextAttemptAt - now;
  return { type: 'call', waitMs: wait > 0 && !usable(state, now) ? wait : 0 };
}

/** A fresh credential: held from `anchor`, and every failure count and backoff cleared. */
function onAnswered<C extends ScheduledCredential>(state: ScheduleState<C>, credential: C, anchor: number, draw: number, now: number): Transition<C> {
  if (state.closed) return { state, action: { type: 'refuse', error: sourceClosed() } };
  return {
    state: {
      ...state,
      held: scheduleCredential(state.config, credential, anchor, draw),
      lastRefresh: now,
      consecutiveFailures: 0,
      authFailures: 0,
      backoffAttempt: 0,
      nextAttemptAt: Number.NEGATIVE_INFINITY,
    },
    action: { type: 'hand_out', credential },
  };
}

/** Decides what a failed refresh means: stop (authority lost, wrong request), count towards the circuit, or back off. */
function onFailed<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError, draws: BackoffDraws, final: boolean, now: number): Transition<C> {
  if (error.code === 'source_closed') return { state, action: { type: 'throw', error } };
  if (final) return stop(state, error, false);
  const counted = { ...state, consecutiveFailures: state.consecutiveFailures + 1 };
  if (AUTHORITY_LOST_CODES.has(error.code)) return stop(counted, error, true);
  if (error.code === 'unauthenticated') return onUnauthenticated(counted, error);
  if (error.code === 'rate_limited') {
    const step = error.retryAfterMs === undefined ? backoffStep(counted, draws.backoff) : { state: counted, delay: error.retryAfterMs };
    // Spread on top of Retry-After, so a fleet told the same instant does not come back together.
    return backOff(step.state, error, step.delay + draws.spread * state.config.backoffBaseMs, now);
  }
  if (error.code === 'issuer_unavailable' || error.code === 'aws_credentials_unavailable') {
    const step = backoffStep(counted, draws.backoff);
    return backOff(step.state, error, Math.max(step.delay, error.retryAfterMs ?? 0), now);
  }
  // The request itself is wrong (invalid_request, 404, 413, 415): retrying cannot help.
  return stop(counted, error, false);
}

/** An auth failure: a refused refresh token stops the source; an API key or IAM failure counts towards opening the circuit. */
function onUnauthenticated<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError): Transition<C> {
  const counted = { ...state, authFailures: state.authFailures + 1 };
  // A refused refresh token never becomes valid again; presenting it again would look like theft.
  if (state.config.refreshTokens) return stop(counted, error, true);
  const circuit = counted.authFailures >= state.config.circuitFailures ? 'open' : counted.circuit;
  return { state: { ...counted, circuit }, action: { type: 'throw', error } };
}

/** Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"): the next step's delay. */
function backoffStep<C extends ScheduledCredential>(state: ScheduleState<C>, draw: number): { state: ScheduleState<C>; delay: number } {
  const attempt = state.backoffAttempt + 1;
  const { backoffBaseMs, backoffMaxMs } = state.config;
  const cap = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(attempt - 1, 30));
  return { state: { ...state, backoffAttempt: attempt }, delay: draw * cap };
}

function backOff<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError, delay: number, now: number): Transition<C> {
  return { state: { ...state, nextAttemptAt: now + delay }, action: { type: 'throw', error: withRetry(error, delay) } };
}

/** Decides, for each caller of a failed flight, whether the credential in hand still serves it (a transient failure, circuit closed). */
function onFlightFailed<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError, now: number): ScheduleAction<C> {
  const still = usable(state, now);
  if (still && !refusal(state) && state.circuit === 'closed' && TRANSIENT_CODES.has(error.code)) return { type: 'hand_out', credential: still.credential };
  return { type: 'throw', error };
}

/** A resource server refused the credential as revoked: stop at once (ignored once closed or stopped). */
function onAuthorityReported<C extends ScheduledCredential>(state: ScheduleState<C>, code: IssuanceErrorCode, message: string): Transition<C> {
  if (state.closed || state.stopped) return { state, action: { type: 'none' } };
  const { state: stopped, loss } = stopWith(state, new IssuanceError(code, message, laneOf(state)), AUTHORITY_LOST_CODES.has(code));
  return { state: stopped, action: { type: 'report', ...(loss && { loss }) } };
}

/** An operator's decision: the circuit closes, a stop is cleared, the counts start again (a closed source stays closed). */
function onReset<C extends ScheduledCredential>(state: ScheduleState<C>): ScheduleState<C> {
  if (state.closed) return state;
  const { stopped: _cleared, ...rest } = state;
  return { ...rest, circuit: 'closed', lossReported: false, consecutiveFailures: 0, authFailures: 0, backoffAttempt: 0, nextAttemptAt: Number.NEGATIVE_INFINITY };
}

/** Stops for good with `error`; an authority loss is reported once until `reset`. */
function stop<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError, authorityLost: boolean): Transition<C> {
  const { state: stopped, loss } = stopWith(state, error, authorityLost);
  return { state: stopped, action: { type: 'throw', error, ...(loss && { loss }) } };
}

function stopWith<C extends ScheduledCredential>(state: ScheduleState<C>, error: IssuanceError, authorityLost: boolean): { state: ScheduleState<C>; loss?: AuthorityLossReport } {
  const report = authorityLost && !state.lossReported;
  return {
    state: { ...state, stopped: error, lossReported: state.lossReported || report },
    ...(report && { loss: { ...laneOf(state), code: error.code, message: error.message } }),
  };
}

function laneOf(state: ScheduleState<ScheduledCredential>): { lane?: string } {
  return state.held ? { lane: state.held.credential.lane } : {};
}

function withRetry(error: IssuanceError, delay: number): IssuanceError {
  return new IssuanceError(error.code, error.message, error.context, { cause: error.cause, retryAfterMs: Math.ceil(delay) });
}
