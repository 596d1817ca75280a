/** The broker's auth-failure circuits, as pure rules over state and time (issue 14: one lane must not be able to open them). */
import { describe, expect, it } from 'vitest';
import { admit, CircuitBreakers, CLOSED, failure, release, type Caller, type CircuitRules, type CircuitState } from '../../../shared/broker/circuit.ts';

const rules: CircuitRules = { failures: 3, identities: 2, coolDownMs: 10_000 };
const lane = (identity: string, tenant: string): Caller => ({ identity, lane: `${identity}:llm:write:${tenant}` });
const hostile = lane('rogue/prod', 'acme');
const hostileElsewhere = lane('rogue/prod', 'globex');
const honest = lane('billing-bot/prod', 'acme');
const bystander = lane('support-triage/prod', 'acme');

/** Drives one circuit the way the broker does, at the times the test sets. */
function circuit() {
  let state: CircuitState = CLOSED;
  return {
    admit(caller: Caller, now: number) {
      const next = admit(state, caller, now, rules);
      state = next.state;
      return next.admission;
    },
    fail(caller: Caller, now: number) {
      const next = failure(state, caller, now, rules);
      state = next.state;
      return next.opened;
    },
    /** An answer that is not a 401. */
    succeed() {
      state = CLOSED;
    },
    release(caller: Caller) {
      state = release(state, caller);
    },
    get state() {
      return state;
    },
  };
}

describe('the auth-failure circuit', () => {
  it('cuts off a lane after 3 upstream 401s in a row, and only that lane', () => {
    const c = circuit();
    expect(c.fail(hostile, 0)).toBeUndefined();
    expect(c.fail(hostile, 1)).toBeUndefined();
    expect(c.fail(hostile, 2)).toBe('lane');
    expect(c.admit(hostile, 2)).toEqual({ admitted: false, retryAfterMs: 10_000, scope: 'lane' });
    expect(c.admit(hostile, 9_002)).toEqual({ admitted: false, retryAfterMs: 1_000, scope: 'lane' });
    expect(c.admit(honest, 3)).toEqual({ admitted: true, probe: false });
    expect(c.admit(hostileElsewhere, 3)).toEqual({ admitted: true, probe: false });
  });

  it('is never opened for every lane by one identity, however many lanes it cuts off', () => {
    const c = circuit();
    for (const tenant of ['a', 'b', 'c', 'd', 'e']) {
      const rogue = lane('rogue/prod', tenant);
      expect([c.fail(rogue, 0), c.fail(rogue, 0), c.fail(rogue, 0)]).toEqual([undefined, undefined, 'lane']);
    }
    expect(c.admit(honest, 1)).toEqual({ admitted: true, probe: false });
    expect(c.admit(bystander, 1)).toEqual({ admitted: true, probe: false });
  });

  it('opens for every lane once lanes of two identities are cut off with no working answer between', () => {
    const c = circuit();
    for (let i = 0; i < 3; i += 1) c.fail(hostile, 0);
    expect([c.fail(honest, 5), c.fail(honest, 5), c.fail(honest, 5)]).toEqual([undefined, undefined, 'provider']);
    expect(c.admit(bystander, 5)).toEqual({ admitted: false, retryAfterMs: 10_000, scope: 'provider' });
    // After the cool-down one call probes; the others wait for its outcome.
    expect(c.admit(bystander, 10_005)).toEqual({ admitted: true, probe: true });
    expect(c.admit(lane('support-triage/prod', 'globex'), 10_005)).toEqual({ admitted: false, retryAfterMs: 1_000, scope: 'provider' });
    c.succeed();
    expect(c.state).toBe(CLOSED);
    expect(c.admit(hostile, 10_006)).toEqual({ admitted: true, probe: false });
  });

  it('forgets every failure once any lane gets an answer that is not a 401', () => {
    const c = circuit();
    c.fail(hostile, 0);
    c.fail(hostile, 0);
    c.fail(honest, 0);
    c.succeed();
    // The counts start again: two more 401s do not cut the lane off.
    expect([c.fail(hostile, 1), c.fail(hostile, 1)]).toEqual([undefined, undefined]);
    for (let i = 0; i < 3; i += 1) c.fail(hostile, 2);
    expect([c.fail(honest, 3), c.fail(honest, 3)]).toEqual([undefined, undefined]);
    c.succeed();
    expect(c.fail(honest, 4)).toBeUndefined();
    expect(c.admit(bystander, 4)).toEqual({ admitted: true, probe: false });
  });

  it('does not let a lane that failed before keep the circuit open by taking the probe', () => {
    const c = circuit();
    for (let i = 0; i < 3; i += 1) c.fail(hostile, 0);
    for (let i = 0; i < 3; i += 1) c.fail(honest, 0);
    // The hostile lane is first after the cool-down, and fails: it cuts off only itself again.
    expect(c.admit(hostile, 10_000)).toEqual({ admitted: true, probe: true });
    expect(c.fail(hostile, 10_001)).toBe('lane');
    expect(c.admit(hostile, 10_002)).toEqual({ admitted: false, retryAfterMs: 9_999, scope: 'lane' });
    // The next caller probes; its success closes the circuit.
    expect(c.admit(bystander, 10_002)).toEqual({ admitted: true, probe: true });
    c.succeed();
    expect(c.admit(honest, 10_003)).toEqual({ admitted: true, probe: false });
  });

  it('reopens for every lane when the probe fails for a lane that had not failed before', () => {
    const c = circuit();
    for (let i = 0; i < 3; i += 1) c.fail(hostile, 0);
    for (let i = 0; i < 3; i += 1) c.fail(honest, 0);
    expect(c.admit(bystander, 10_000)).toEqual({ admitted: true, probe: true });
    expect(c.fail(bystander, 10_050)).toBe('provider');
    expect(c.admit(lane('support-triage/prod', 'globex'), 10_050)).toEqual({ admitted: false, retryAfterMs: 10_000, scope: 'provider' });
  });

  it('lets the next call probe when a probe ended without an answer', () => {
    const c = circuit();
    for (let i = 0; i < 3; i += 1) c.fail(hostile, 0);
    for (let i = 0; i < 3; i += 1) c.fail(honest, 0);
    expect(c.admit(bystander, 10_000)).toEqual({ admitted: true, probe: true });
    c.release(bystander);
    expect(c.admit(bystander, 10_001)).toEqual({ admitted: true, probe: true });
    // A cut-off lane's own probe, released, is free again too.
    const d = circuit();
    for (let i = 0; i < 3; i += 1) d.fail(hostile, 0);
    expect(d.admit(hostile, 10_000)).toEqual({ admitted: true, probe: true });
    expect(d.admit(hostile, 10_000)).toEqual({ admitted: false, retryAfterMs: 1_000, scope: 'lane' });
    d.release(hostile);
    expect(d.admit(hostile, 10_001)).toEqual({ admitted: true, probe: true });
  });

  it('remembers at most 1000 failing lanes, forgetting the oldest', () => {
    const c = circuit();
    for (let i = 0; i <= 1_000; i += 1) c.fail(lane('rogue/prod', `t${i}`), 0);
    expect(c.state.lanes.size).toBe(1_000);
    expect(c.state.lanes.has(lane('rogue/prod', 't0').lane)).toBe(false);
    expect(c.state.lanes.has(lane('rogue/prod', 't1000').lane)).toBe(true);
  });
});

describe('CircuitBreakers', () => {
  it('keeps one circuit per key version on the injected clock: a rotated key starts closed', () => {
    let now = 0;
    const circuits = new CircuitBreakers({ now: () => now }, { coolDownMs: 10_000 });
    expect([hostile, hostile, hostile, honest, honest].map((caller) => circuits.failure('p@v1', caller))).toEqual([undefined, undefined, 'lane', undefined, undefined]);
    expect(circuits.failure('p@v1', honest)).toBe('provider');
    expect(circuits.admit('p@v1', bystander)).toEqual({ admitted: false, retryAfterMs: 10_000, scope: 'provider' });
    expect(circuits.admit('p@v2', bystander)).toEqual({ admitted: true, probe: false });
    now = 10_000;
    expect(circuits.admit('p@v1', bystander)).toEqual({ admitted: true, probe: true });
    circuits.success('p@v1');
    expect(circuits.admit('p@v1', hostile)).toEqual({ admitted: true, probe: false });
  });
});
