/**
 * The credential source's schedule as a pure state machine (packages/sdk/src/refresh-schedule.ts):
 * every transition, driven with plain values (no issuer, no clock, no randomness).
 */
import { describe, expect, it } from 'vitest';
import { IssuanceError } from '../../packages/sdk/src/errors.ts';
import type { IssuanceErrorCode } from '../../packages/sdk/src/errors.ts';
import {
  AUTHORITY_LOST_CODES,
  initialState,
  next,
  scheduleCredential,
  usable,
  type ScheduleConfig,
  type ScheduledCredential,
  type ScheduleState,
} from '../../packages/sdk/src/refresh-schedule.ts';

const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const LANE = 'support-triage/prod:tickets:read:acme';
const CONFIG: ScheduleConfig = { skewMs: 30_000, jitter: 0.2, circuitFailures: 3, backoffBaseMs: 1_000, backoffMaxMs: 8_000, refreshTokens: false };
const DRAWS = { backoff: 0.5, spread: 0.25 };

/** A 300 s credential issued at `at`, refreshAt at 75 % of its lifetime. */
function credential(at = T0, ttlMs = 300_000): ScheduledCredential {
  return {
    lane: LANE,
    issuedAt: new Date(at).toISOString(),
    expiresAt: new Date(at + ttlMs).toISOString(),
    refreshAt: new Date(at + ttlMs * 0.75).toISOString(),
  };
}

function holding(config: ScheduleConfig = CONFIG, at = T0): ScheduleState<ScheduledCredential> {
  return initialState(config, scheduleCredential(config, credential(at), at, 0));
}

const failure = (code: IssuanceErrorCode, retryAfterMs?: number) =>
  new IssuanceError(code, `said ${code}`, {}, retryAfterMs === undefined ? undefined : { retryAfterMs });

function fail(state: ScheduleState<ScheduledCredential>, code: IssuanceErrorCode, now = T0, retryAfterMs?: number) {
  return next(state, { type: 'failed', error: failure(code, retryAfterMs), draws: DRAWS }, now);
}

describe('scheduleCredential', () => {
  it('refreshes at refreshAt less the drawn part of the jitter window, and hands out until expiry less the skew', () => {
    const early = scheduleCredential(CONFIG, credential(), T0, 1);
    const late = scheduleCredential(CONFIG, credential(), T0, 0);

    expect(late).toMatchObject({ refreshTime: T0 + 225_000, validUntil: T0 + 270_000 });
    expect(early.refreshTime).toBe(T0 + 225_000 - 0.2 * 225_000);
  });

  it('caps the skew at a tenth of the lifetime, so a short credential stays useful', () => {
    const held = scheduleCredential(CONFIG, credential(T0, 60_000), T0, 0);

    expect(held.validUntil).toBe(T0 + 54_000);
  });

  it('never refreshes later than the credential is handed out', () => {
    const odd = { ...credential(), refreshAt: new Date(T0 + 299_000).toISOString() };

    expect(scheduleCredential(CONFIG, odd, T0, 0).refreshTime).toBe(T0 + 270_000);
  });

  it('counts the lifetime from the anchor, not from issuedAt', () => {
    expect(scheduleCredential(CONFIG, credential(T0 + 60_000), T0, 0).validUntil).toBe(T0 + 270_000);
  });
});

describe('get', () => {
  it('refreshes when no credential is held', () => {
    expect(next(initialState(CONFIG), { type: 'get', force: false }, T0).action).toEqual({ type: 'refresh' });
  });

  it('hands out the credential in hand before its refresh time, and refreshes at it', () => {
    const state = holding();

    expect(next(state, { type: 'get', force: false }, T0 + 224_999).action).toMatchObject({ type: 'hand_out', credential: { lane: LANE } });
    expect(next(state, { type: 'get', force: false }, T0 + 225_000).action).toEqual({ type: 'refresh' });
  });

  it('refreshes on force even when the credential is fresh', () => {
    expect(next(holding(), { type: 'get', force: true }, T0).action).toEqual({ type: 'refresh' });
  });

  it('refreshes once the credential is past its hand-out time', () => {
    expect(next(holding(), { type: 'get', force: false }, T0 + 270_000).action).toEqual({ type: 'refresh' });
  });

  it('hands out the usable credential while backing off, and refreshes once the backoff is over', () => {
    const { state } = fail(holding(), 'issuer_unavailable', T0 + 225_000);

    expect(next(state, { type: 'get', force: false }, T0 + 225_100).action.type).toBe('hand_out');
    expect(next(state, { type: 'get', force: false }, state.nextAttemptAt).action).toEqual({ type: 'refresh' });
  });

  it('refuses with circuit_open when the circuit is open and no credential serves (or on force)', () => {
    const open = { ...holding(), circuit: 'open' as const };

    expect(next(open, { type: 'get', force: false }, T0 + 225_000).action.type).toBe('hand_out');
    expect(next(open, { type: 'get', force: true }, T0).action).toMatchObject({ type: 'refuse', error: { code: 'circuit_open', context: { lane: LANE } } });
    expect(next(open, { type: 'get', force: false }, T0 + 270_000).action).toMatchObject({ type: 'refuse', error: { code: 'circuit_open' } });
  });

  it('refuses with the stop error once stopped, and with source_closed once closed', () => {
    const stopped = fail(holding(), 'lane_revoked').state;
    const closed = next(holding(), { type: 'close' }, T0).state;

    expect(next(stopped, { type: 'get', force: false }, T0).action).toMatchObject({ type: 'refuse', error: { code: 'lane_revoked' } });
    expect(next(closed, { type: 'get', force: false }, T0).action).toMatchObject({ type: 'refuse', error: { code: 'source_closed' } });
  });
});

describe('flight', () => {
  it('calls at once without a backoff', () => {
    expect(next(initialState(CONFIG), { type: 'flight' }, T0).action).toEqual({ type: 'call', waitMs: 0 });
  });

  it('waits out the backoff first when no credential is usable', () => {
    const { state } = fail(initialState(CONFIG), 'issuer_unavailable');

    expect(next(state, { type: 'flight' }, T0 + 100).action).toEqual({ type: 'call', waitMs: state.nextAttemptAt - T0 - 100 });
  });

  it('does not wait while a usable credential is in hand (a forced refresh asks at once)', () => {
    const { state } = fail(holding(), 'issuer_unavailable');

    expect(next(state, { type: 'flight' }, T0 + 100).action).toEqual({ type: 'call', waitMs: 0 });
  });

  it('refuses with source_closed once closed', () => {
    const closed = next(initialState(CONFIG), { type: 'close' }, T0).state;

    expect(next(closed, { type: 'flight' }, T0).action).toMatchObject({ type: 'refuse', error: { code: 'source_closed' } });
  });
});

describe('answered', () => {
  it('holds the new credential from its anchor and clears every failure count and backoff', () => {
    let state = initialState<ScheduledCredential>(CONFIG);
    state = fail(state, 'unauthenticated').state;
    state = fail(state, 'issuer_unavailable').state;

    const { state: after, action } = next(state, { type: 'answered', credential: credential(), anchor: T0 - 500, draw: 0 }, T0 + 10);

    expect(action).toMatchObject({ type: 'hand_out', credential: { lane: LANE } });
    expect(after).toMatchObject({ consecutiveFailures: 0, authFailures: 0, backoffAttempt: 0, nextAttemptAt: Number.NEGATIVE_INFINITY, lastRefresh: T0 + 10 });
    expect(after.held).toMatchObject({ validUntil: T0 - 500 + 270_000, refreshTime: T0 - 500 + 225_000 });
  });

  it('refuses with source_closed when the source closed while the request was out', () => {
    const closed = next(initialState<ScheduledCredential>(CONFIG), { type: 'close' }, T0).state;
    const { state, action } = next(closed, { type: 'answered', credential: credential(), anchor: T0, draw: 0 }, T0);

    expect(action).toMatchObject({ type: 'refuse', error: { code: 'source_closed' } });
    expect(state.held).toBeUndefined();
  });
});

describe('failed', () => {
  it.each([...AUTHORITY_LOST_CODES])('%s stops the source and reports the lost authority with the lane', (code) => {
    const { state, action } = fail(holding(), code);

    expect(state.stopped?.code).toBe(code);
    expect(state.consecutiveFailures).toBe(1);
    expect(action).toMatchObject({ type: 'throw', error: { code }, loss: { lane: LANE, code, message: `said ${code}` } });
  });

  it('reports a lost authority once until reset', () => {
    const first = fail(holding(), 'lane_revoked').state;
    const again = fail(first, 'credential_revoked');

    expect(again.action).not.toHaveProperty('loss');
  });

  it('opens the circuit after circuitFailures unauthenticated answers in a row, without stopping', () => {
    let state = holding();
    for (let i = 1; i < CONFIG.circuitFailures; i++) {
      state = fail(state, 'unauthenticated').state;
      expect(state).toMatchObject({ circuit: 'closed', authFailures: i });
    }
    const { state: open, action } = fail(state, 'unauthenticated');

    expect(open).toMatchObject({ circuit: 'open', authFailures: CONFIG.circuitFailures });
    expect(open.stopped).toBeUndefined();
    expect(action).toMatchObject({ type: 'throw', error: { code: 'unauthenticated' } });
    expect(action).not.toHaveProperty('loss');
  });

  it('stops at the first unauthenticated with refresh tokens, reporting it as a lost authority', () => {
    const { state, action } = fail(holding({ ...CONFIG, refreshTokens: true }), 'unauthenticated');

    expect(state).toMatchObject({ circuit: 'closed', authFailures: 1, stopped: { code: 'unauthenticated' } });
    expect(action).toMatchObject({ type: 'throw', loss: { code: 'unauthenticated', lane: LANE } });
  });

  it.each(['issuer_unavailable', 'aws_credentials_unavailable'] as const)('%s backs off exponentially with full jitter, capped at maxMs', (code) => {
    let state = initialState<ScheduledCredential>(CONFIG);
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { state: after, action } = fail(state, code, T0);
      delays.push(after.nextAttemptAt - T0);
      expect(action).toMatchObject({ type: 'throw', error: { code, retryAfterMs: Math.ceil(after.nextAttemptAt - T0) } });
      state = after;
    }

    // 0.5 × min(8 s, 1 s × 2^attempt−1)
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 4_000]);
    expect(state).toMatchObject({ backoffAttempt: 5, consecutiveFailures: 5, circuit: 'closed' });
    expect(state.stopped).toBeUndefined();
  });

  it('waits at least the issuer\'s Retry-After on issuer_unavailable', () => {
    const { state } = fail(initialState(CONFIG), 'issuer_unavailable', T0, 7_000);

    expect(state.nextAttemptAt).toBe(T0 + 7_000);
  });

  it('rate_limited waits Retry-After plus a spread, without a backoff step', () => {
    const { state, action } = fail(initialState(CONFIG), 'rate_limited', T0, 2_000);

    expect(state).toMatchObject({ nextAttemptAt: T0 + 2_000 + 0.25 * 1_000, backoffAttempt: 0, authFailures: 0 });
    expect(action).toMatchObject({ type: 'throw', error: { code: 'rate_limited', retryAfterMs: 2_250 } });
  });

  it('rate_limited without Retry-After takes a backoff step plus the spread', () => {
    const { state } = fail(initialState(CONFIG), 'rate_limited', T0);

    expect(state).toMatchObject({ nextAttemptAt: T0 + 500 + 250, backoffAttempt: 1 });
  });

  it('a wrong request stops the source without reporting a lost authority', () => {
    const { state, action } = fail(holding(), 'invalid_request');

    expect(state.stopped?.code).toBe('invalid_request');
    expect(action).toMatchObject({ type: 'throw', error: { code: 'invalid_request' } });
    expect(action).not.toHaveProperty('loss');
  });

  it('a final failure stops the source uncounted, without reporting', () => {
    const { state, action } = next(holding(), { type: 'failed', error: failure('aws_credentials_unavailable'), draws: DRAWS, final: true }, T0);

    expect(state).toMatchObject({ consecutiveFailures: 0, stopped: { code: 'aws_credentials_unavailable' } });
    expect(action).not.toHaveProperty('loss');
  });

  it('source_closed passes through and changes nothing', () => {
    const before = holding();
    const { state, action } = fail(before, 'source_closed');

    expect(state).toBe(before);
    expect(action).toMatchObject({ type: 'throw', error: { code: 'source_closed' } });
  });
});

describe('flight_failed', () => {
  it.each(['issuer_unavailable', 'rate_limited', 'aws_credentials_unavailable'] as const)('hands out the usable credential after %s', (code) => {
    const { state } = fail(holding(), code, T0 + 225_000);

    expect(next(state, { type: 'flight_failed', error: failure(code) }, T0 + 225_001).action.type).toBe('hand_out');
  });

  it('throws a transient failure when no credential is usable any more', () => {
    const { state } = fail(holding(), 'issuer_unavailable', T0 + 269_000);

    expect(next(state, { type: 'flight_failed', error: failure('issuer_unavailable') }, T0 + 270_000).action).toMatchObject({ type: 'throw', error: { code: 'issuer_unavailable' } });
  });

  it('throws once the circuit is open or the source stopped, even with a usable credential', () => {
    const open = { ...holding(), circuit: 'open' as const };
    const stopped = fail(holding(), 'tool_disabled').state;

    expect(next(open, { type: 'flight_failed', error: failure('issuer_unavailable') }, T0).action.type).toBe('throw');
    expect(next(stopped, { type: 'flight_failed', error: failure('issuer_unavailable') }, T0).action.type).toBe('throw');
  });

  it('throws a non-transient failure', () => {
    expect(next(holding(), { type: 'flight_failed', error: failure('unauthenticated') }, T0).action).toMatchObject({ type: 'throw', error: { code: 'unauthenticated' } });
  });
});

describe('authority_reported', () => {
  it('stops the source and reports a revocation code as a lost authority', () => {
    const { state, action } = next(holding(), { type: 'authority_reported', code: 'credential_revoked', message: 'revoked' }, T0);

    expect(state.stopped).toMatchObject({ code: 'credential_revoked', context: { lane: LANE } });
    expect(action).toEqual({ type: 'report', loss: { lane: LANE, code: 'credential_revoked', message: 'revoked' } });
  });

  it('stops without a report for a code that is not a lost authority', () => {
    const { state, action } = next(holding(), { type: 'authority_reported', code: 'invalid_request', message: 'no' }, T0);

    expect(state.stopped?.code).toBe('invalid_request');
    expect(action).toEqual({ type: 'report' });
  });

  it('is ignored once stopped or closed', () => {
    const stopped = fail(holding(), 'lane_revoked').state;
    const closed = next(holding(), { type: 'close' }, T0).state;

    expect(next(stopped, { type: 'authority_reported', code: 'credential_revoked', message: 'x' }, T0)).toEqual({ state: stopped, action: { type: 'none' } });
    expect(next(closed, { type: 'authority_reported', code: 'credential_revoked', message: 'x' }, T0)).toEqual({ state: closed, action: { type: 'none' } });
  });
});

describe('reset and close', () => {
  it('reset closes the circuit, clears the stop and every count, and keeps the credential', () => {
    let state = holding();
    for (let i = 0; i < CONFIG.circuitFailures; i++) state = fail(state, 'unauthenticated').state;
    state = fail(state, 'lane_revoked').state;

    const { state: after } = next(state, { type: 'reset' }, T0);

    expect(after).toMatchObject({ circuit: 'closed', lossReported: false, consecutiveFailures: 0, authFailures: 0, backoffAttempt: 0, nextAttemptAt: Number.NEGATIVE_INFINITY });
    expect(after.stopped).toBeUndefined();
    expect(usable(after, T0)).toBe(state.held);
    expect(fail(after, 'lane_revoked').action).toHaveProperty('loss');
  });

  it('reset leaves a closed source closed', () => {
    const closed = next(holding(), { type: 'close' }, T0).state;

    expect(next(closed, { type: 'reset' }, T0).state).toBe(closed);
  });
});
