/**
 * Circuits per provider key: when the upstream keeps refusing the broker's key, the broker
 * stops presenting it for `coolDownMs`, so a revoked or mistyped key is not hammered into the
 * provider's lockout. Then one probe goes through (half-open); a success closes the circuit, a
 * failure opens it again. Circuits are keyed by provider AND secret version: a rotated key
 * starts with a closed circuit, which is how an operator's fix takes effect.
 *
 * What counts, and who can open it (issue 14):
 * - Only a 401 counts: the upstream did not accept the key (RFC 9110 §15.5.2). A 403 says it
 *   accepted the key and refuses this request (§15.5.4); that shows the key works.
 * - An agent chooses its own requests, so it can find one the upstream answers 401 with a good
 *   key. Its failures first cut off only its own lane (`failures` 401s in a row).
 * - The key's circuit, which holds back every lane, opens only once lanes of `identities`
 *   different identities have each been cut off, with no answer between that showed the key
 *   works. An identity counts once however many lanes it has: an agent whose grant allows any
 *   tenant can mint as many lanes as it likes.
 * - Any answer that is not a 401 closes everything: the key works.
 * - The probe of an open key circuit only reopens it when it fails for a lane that had not
 *   failed before. A lane that had (a hostile one, say) only cuts itself off again, and the
 *   next caller probes, so one lane cannot keep the circuit open by always probing first.
 *
 * The rules are pure functions of a circuit's state, the caller and the time; CircuitBreakers
 * holds the states of one process and reads its clock.
 */
import type { Clock } from '../ports/index.ts';

export interface CircuitOptions {
  /** Upstream 401s in a row that cut off a lane's calls. @default 3 */
  readonly failures?: number;
  /** Identities whose lanes must all be cut off before the key is held back for every lane. @default 2 */
  readonly identities?: number;
  /** How long an open circuit refuses before it lets one probe through. @default 30_000 */
  readonly coolDownMs?: number;
}

export type CircuitRules = Required<CircuitOptions>;

/** Who makes a call: the lane it is made for and the identity that holds the lane. */
export interface Caller {
  readonly lane: string;
  readonly identity: string;
}

interface LaneState {
  readonly identity: string;
  /** 401s in a row on this lane's calls. */
  readonly failures: number;
  /** Set once the lane is cut off. */
  readonly openedAt?: number;
  /** Its one probe after the cool-down is out. */
  readonly probing: boolean;
}

export interface CircuitState {
  /** The lanes whose calls met a 401 since the last answer that showed the key works (insertion order). */
  readonly lanes: ReadonlyMap<string, LaneState>;
  /** Set while the key is held back for every lane. */
  readonly openedAt?: number;
  /** The lane whose call is the key circuit's probe. */
  readonly prober?: string;
}

export const CLOSED: CircuitState = { lanes: new Map() };

export type CircuitScope = 'lane' | 'provider';

export type Admission =
  | { readonly admitted: true; readonly probe: boolean }
  | { readonly admitted: false; readonly retryAfterMs: number; readonly scope: CircuitScope };

/** How long a caller waits while another call probes. */
const PROBE_WAIT_MS = 1_000;
/** Lanes a circuit remembers; past it the oldest is forgotten (a flood of minted lanes is not a memory leak). */
const MAX_LANES = 1_000;

export const DEFAULT_RULES: CircuitRules = { failures: 3, identities: 2, coolDownMs: 30_000 };

/** Whether the caller's call may go to the upstream now, and whether it is a probe. */
export function admit(state: CircuitState, caller: Caller, now: number, rules: CircuitRules): { admission: Admission; state: CircuitState } {
  const refuse = (retryAfterMs: number, scope: CircuitScope) => ({ admission: { admitted: false, retryAfterMs, scope } as const, state });
  if (state.openedAt !== undefined && now - state.openedAt < rules.coolDownMs) return refuse(rules.coolDownMs - (now - state.openedAt), 'provider');
  const lane = state.lanes.get(caller.lane);
  const laneOpen = lane?.openedAt !== undefined;
  if (lane?.openedAt !== undefined) {
    const elapsed = now - lane.openedAt;
    if (elapsed < rules.coolDownMs) return refuse(rules.coolDownMs - elapsed, 'lane');
    if (lane.probing) return refuse(PROBE_WAIT_MS, 'lane');
  }
  const keyOpen = state.openedAt !== undefined;
  if (keyOpen && state.prober !== undefined) return refuse(PROBE_WAIT_MS, 'provider');
  if (!keyOpen && !laneOpen) return { admission: { admitted: true, probe: false }, state };
  let next = state;
  if (lane && laneOpen) next = withLane(next, caller.lane, { ...lane, probing: true });
  if (keyOpen) next = { ...next, prober: caller.lane };
  return { admission: { admitted: true, probe: true }, state: next };
}

/** The upstream answered the caller's call 401; `opened` says which circuit this opened, if any. */
export function failure(state: CircuitState, caller: Caller, now: number, rules: CircuitRules): { state: CircuitState; opened?: CircuitScope } {
  const before = state.lanes.get(caller.lane);
  const failures = (before?.failures ?? 0) + 1;
  const cutOff = before?.probing === true || failures >= rules.failures;
  const openedAt = cutOff ? now : before?.openedAt;
  const lane: LaneState = { identity: caller.identity, failures, probing: false, ...(openedAt !== undefined && { openedAt }) };
  let next = withLane(state, caller.lane, lane);
  const laneOpened = cutOff ? ({ opened: 'lane' } as const) : {};
  if (state.prober === caller.lane) {
    next = withoutProber(next);
    // Fresh evidence reopens the key's circuit; a lane that had failed before only cuts itself off.
    return before === undefined ? { state: { ...next, openedAt: now }, opened: 'provider' } : { state: next, ...laneOpened };
  }
  if (next.openedAt === undefined && cutOffIdentities(next) >= rules.identities) return { state: { ...next, openedAt: now }, opened: 'provider' };
  return { state: next, ...laneOpened };
}

/** A probe that ended without an answer (timeout, network, refused before it was sent): the next call probes. */
export function release(state: CircuitState, caller: Caller): CircuitState {
  let next = state.prober === caller.lane ? withoutProber(state) : state;
  const lane = next.lanes.get(caller.lane);
  if (lane?.probing) next = withLane(next, caller.lane, { ...lane, probing: false });
  return next;
}

function cutOffIdentities(state: CircuitState): number {
  const identities = new Set<string>();
  for (const lane of state.lanes.values()) if (lane.openedAt !== undefined) identities.add(lane.identity);
  return identities.size;
}

function withLane(state: CircuitState, id: string, lane: LaneState): CircuitState {
  const lanes = new Map(state.lanes);
  lanes.delete(id);
  lanes.set(id, lane);
  for (const oldest of lanes.keys()) {
    if (lanes.size <= MAX_LANES) break;
    lanes.delete(oldest);
  }
  return { ...state, lanes };
}

function withoutProber(state: CircuitState): CircuitState {
  return { lanes: state.lanes, ...(state.openedAt !== undefined && { openedAt: state.openedAt }) };
}

/** The circuits of one broker process, by `provider@version`. */
export class CircuitBreakers {
  readonly #rules: CircuitRules;
  readonly #clock: Clock;
  readonly #states = new Map<string, CircuitState>();

  constructor(clock: Clock, options: CircuitOptions = {}) {
    this.#clock = clock;
    this.#rules = { ...DEFAULT_RULES, ...options };
  }

  admit(key: string, caller: Caller): Admission {
    const { admission, state } = admit(this.#state(key), caller, this.#clock.now(), this.#rules);
    this.#set(key, state);
    return admission;
  }

  /** An upstream 401; says which circuit it opened, if any. */
  failure(key: string, caller: Caller): CircuitScope | undefined {
    const { state, opened } = failure(this.#state(key), caller, this.#clock.now(), this.#rules);
    this.#set(key, state);
    return opened;
  }

  /** Any answer that is not a 401: the key works. */
  success(key: string): void {
    this.#states.delete(key);
  }

  release(key: string, caller: Caller): void {
    this.#set(key, release(this.#state(key), caller));
  }

  #state(key: string): CircuitState {
    return this.#states.get(key) ?? CLOSED;
  }

  #set(key: string, state: CircuitState): void {
    if (state === CLOSED) this.#states.delete(key);
    else this.#states.set(key, state);
  }
}
