/**
 * A circuit per provider key: after `failures` upstream auth failures in a row, the broker
 * stops presenting that key for `coolDownMs`, so a revoked or mistyped key is not hammered
 * into the provider's lockout. Then one probe goes through (half-open); a success closes the
 * circuit, a failure opens it again. Circuits are keyed by provider AND secret version: a
 * rotated key starts with a closed circuit, which is how an operator's fix takes effect.
 */
import type { Clock } from '../ports.ts';

export interface CircuitOptions {
  /** Consecutive auth failures that open the circuit. @default 3 */
  readonly failures?: number;
  /** How long an open circuit refuses before it lets one probe through. @default 30_000 */
  readonly coolDownMs?: number;
}

interface State {
  consecutive: number;
  openedAt?: number;
  probing: boolean;
}

export type Admission = { readonly admitted: true; readonly probe: boolean } | { readonly admitted: false; readonly retryAfterMs: number };

export class CircuitBreakers {
  readonly #failures: number;
  readonly #coolDownMs: number;
  readonly #clock: Clock;
  readonly #states = new Map<string, State>();

  constructor(clock: Clock, options: CircuitOptions = {}) {
    this.#clock = clock;
    this.#failures = options.failures ?? 3;
    this.#coolDownMs = options.coolDownMs ?? 30_000;
  }

  admit(key: string): Admission {
    const state = this.#states.get(key);
    if (state?.openedAt === undefined) return { admitted: true, probe: false };
    const elapsed = this.#clock.now() - state.openedAt;
    if (elapsed < this.#coolDownMs) return { admitted: false, retryAfterMs: this.#coolDownMs - elapsed };
    if (state.probing) return { admitted: false, retryAfterMs: 1_000 };
    state.probing = true;
    return { admitted: true, probe: true };
  }

  /** An upstream auth failure; true when it (re)opened the circuit. */
  failure(key: string): boolean {
    const state = this.#states.get(key) ?? { consecutive: 0, probing: false };
    this.#states.set(key, state);
    state.consecutive += 1;
    if (!state.probing && state.consecutive < this.#failures) return false;
    state.openedAt = this.#clock.now();
    state.probing = false;
    return true;
  }

  /** Any answer that is not an auth failure: the key works. */
  success(key: string): void {
    this.#states.delete(key);
  }

  /** A probe that ended without an answer (timeout, network): let the next request probe. */
  release(key: string): void {
    const state = this.#states.get(key);
    if (state) state.probing = false;
  }

  isOpen(key: string): boolean {
    return this.#states.get(key)?.openedAt !== undefined;
  }
}
