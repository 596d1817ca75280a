/**
 * A credential source: what an agent holds to always have a valid credential for one lane.
 *
 * Rules it enforces:
 * - **refresh before the edge**: each credential gets a refresh time drawn uniformly from
 *   `[refreshAt − jitter window, refreshAt]` (the issuer's `refreshAt` is ≈ 75 % of the
 *   lifetime; the jitter window is `jitter` × the time from issue to `refreshAt`), so a fleet
 *   spawned together does not refresh in the same second. It is never later than
 *   `expiresAt − skew`, the point after which the credential is no longer handed out at all
 *   (skew is `skewMs`, at most a tenth of the lifetime so short credentials stay useful).
 *   Times are counted on the agent's own clock from when the request was sent (less the
 *   issuer's truncation of `issuedAt` to the second), so an issuer whose clock runs ahead
 *   cannot make the agent hold a credential too long;
 * - **one refresh in flight** per source, however many callers wait for it;
 * - **typed outcomes**:
 *   - `credential_revoked`, `lane_revoked`, `identity_revoked`, `tenant_revoked`,
 *     `tool_disabled`, `not_granted`, `kind_not_allowed`, `forbidden`: the authority is gone.
 *     The source stops at once (no retry ever reaches the issuer) and calls
 *     `onAuthorityLost` exactly once;
 *   - `unauthenticated`: an auth failure. After `circuit.failures` in a row the circuit opens
 *     and the issuer is not called again until `reset()`. A refresh token that is refused is
 *     refused for good (it is unknown, spent or expired), so with refresh tokens the first
 *     `unauthenticated` stops the source like a lost authority: presenting it again could
 *     only look like theft;
 *   - `rate_limited` (429): wait at least `Retry-After`; never an auth failure;
 *   - `issuer_unavailable`, any 5xx, network errors and hangs (each request has a timeout):
 *     exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 *     Jitter"); never an auth failure, never a lockout. While the current credential is
 *     usable it is handed out and the refresh is retried after the backoff; without one,
 *     `get()` waits out the backoff, tries once, and throws the typed error;
 *   - other refusals (`invalid_request`, 404, 413, 415): the request itself is wrong and
 *     retrying cannot help: the source stops with that code (no `onAuthorityLost`);
 * - **refresh tokens** (an instance from `POST /v1/spawn`): the source calls
 *   `POST /v1/instance/credentials`, the route that takes a refresh token on AWS as locally
 *   (`POST /v1/credentials` needs SigV4 on AWS); an API key calls `POST /v1/credentials`. Each
 *   answer carries the next token; the source keeps it in its {@link RefreshTokenChain}, shared
 *   by the sources of the same instance so one token is never presented twice;
 * - **IAM** (`auth: { aws: {} }`, an agent on ECS, EKS, Lambda or EC2 calling a deployed
 *   stack): each request to `POST /v1/credentials` is signed with SigV4 for `execute-api`
 *   (aws-sigv4.ts), with the role credentials the AWS SDK's default chain resolves at that
 *   moment. When no AWS credentials can be had (the container endpoint or IMDS is briefly
 *   unreachable) the request is not sent, and that counts as `aws_credentials_unavailable`,
 *   retried with the same backoff as `issuer_unavailable`.
 *
 * The schedule (when to hand out, refresh, back off, open the circuit or stop) is a pure state
 * machine in refresh-schedule.ts; this file is its driver: it parses options, talks to the
 * issuer, sleeps and calls back, and feeds each outcome to the machine as an event.
 */
import { IssuanceError } from './errors.ts';
import { parseCredential, readAnswer } from './issuer-answer.ts';
import type { IssuanceErrorCode } from './errors.ts';
import { assertFetchableUrl, assertKnownKeys, defaultFetch, integerOption } from './lib/fetch.ts';
import type { Clock, Fetch } from './lib/fetch.ts';
import { assertSigningOptions, AwsSigningError, createAwsSigner } from './aws-sigv4.ts';
import type { AwsRequestSigner, AwsSigningOptions } from './aws-sigv4.ts';
import { createRefreshTokenChain } from './refresh-tokens.ts';
import type { RefreshTokenChain } from './refresh-tokens.ts';
import { initialState, next, scheduleCredential, sourceClosed } from './refresh-schedule.ts';
import type { ScheduleAction, ScheduleConfig, ScheduleEvent, ScheduleState } from './refresh-schedule.ts';

/** The body of `POST /v1/credentials` (docs/http.md). */
export interface CredentialRequest {
  readonly tool: string;
  readonly actions: readonly string[];
  readonly tenant?: string;
  readonly kind?: 'jwt' | 'sts';
  readonly ttlSeconds?: number;
  readonly task?: { readonly id: string; readonly purpose?: string };
  readonly onBehalfOf?: string;
}

/** AWS session credentials of the `sts` kind. */
export interface AwsSessionCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** ISO instant. */
  readonly expiration: string;
}

/** A credential as the issuer answers it (`201` of `POST /v1/credentials`). */
export interface Credential {
  readonly credentialId: string;
  readonly kind: 'jwt' | 'sts';
  /** The JWT, for the `jwt` kind. */
  readonly token?: string;
  readonly aws?: AwsSessionCredentials;
  readonly tokenType: string;
  readonly identity: string;
  readonly lane: string;
  readonly tool: string;
  readonly tenant: string;
  readonly actions: readonly string[];
  readonly audience: string;
  readonly issuedAt: string;
  readonly expiresAt: string;
  readonly refreshAt: string;
  readonly quotaBucket?: string;
  readonly [field: string]: unknown;
}

/**
 * How the source authenticates to the issuer: a local API key (`lk_…`), an instance's refresh
 * token (`lr_…`) or shared chain, or the caller's IAM role (SigV4; `{ aws: {} }` for the defaults).
 */
export type SourceAuth =
  | { readonly apiKey: string }
  | { readonly refreshToken: string | RefreshTokenChain }
  | { readonly aws: AwsSigningOptions };

/** What `onAuthorityLost` is told: which lane, and the issuer's typed reason. */
export interface AuthorityLoss {
  /** The lane of the last credential, when the source ever had one. */
  readonly lane?: string;
  readonly code: IssuanceErrorCode;
  readonly message: string;
}

export interface CredentialSourceOptions {
  /** The issuer URL (`https:`, or `http:` on loopback for `lanyard dev`). */
  readonly issuer: string;
  /** An API key (`lk_…`), an instance's refresh token (`lr_…`) or shared chain, or `{ aws: {} }` for IAM. */
  readonly auth: SourceAuth;
  /** What to ask for on every refresh. */
  readonly request: CredentialRequest;
  /** A credential already held (e.g. from the spawn answer): used until its refresh time. */
  readonly initial?: Credential;
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
  /** Milliseconds since the epoch. @default Date.now */
  readonly clock?: Clock;
  /** Uniform in [0, 1). @default Math.random */
  readonly random?: () => number;
  /** Waits `ms` (rejecting when `signal` aborts). @default setTimeout */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** A credential is not handed out within this margin before its expiry (capped at a tenth of the lifetime). @default 30_000 */
  readonly skewMs?: number;
  /** Fraction of the time from issue to `refreshAt` over which refreshes are spread. @default 0.2 */
  readonly jitter?: number;
  /** One issuer request may take this long before it counts as a hang. @default 10_000 */
  readonly timeoutMs?: number;
  /** Called once when the authority is gone (revoked, disabled, no longer granted). */
  readonly onAuthorityLost?: (loss: AuthorityLoss) => void;
  /** Consecutive auth failures (`unauthenticated`) that open the circuit. @default { failures: 3 } */
  readonly circuit?: { readonly failures?: number };
  /** Full-jitter exponential backoff for transient failures. @default { baseMs: 1_000, maxMs: 60_000 } */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
}

export interface SourceState {
  /** Until when (on the source's clock) the current credential is handed out; undefined without one. */
  readonly validUntil?: number;
  /** When the current credential will be refreshed. */
  readonly nextRefresh?: number;
  /** When the last successful refresh happened. */
  readonly lastRefresh?: number;
  /** Failed refreshes in a row, of any kind. */
  readonly consecutiveFailures: number;
  /** `unauthenticated` answers in a row (what opens the circuit). */
  readonly consecutiveAuthFailures: number;
  readonly circuit: 'closed' | 'open';
  /** Set once the source stopped for good (until `reset()`). */
  readonly stopped?: { readonly code: IssuanceErrorCode };
}

export interface CredentialSource {
  /** A credential that is valid now, refreshed first when its refresh time has come. */
  get(): Promise<Credential>;
  /** Refreshes now (one flight shared with `get()`), e.g. after a resource server said `token_expired`. */
  refresh(): Promise<Credential>;
  /** Tells the source a resource server refused its credential as revoked: it stops at once. */
  reportAuthorityLost(loss: { readonly code: IssuanceErrorCode; readonly message: string }): void;
  state(): SourceState;
  /** Closes the circuit and clears a stop, so the issuer is asked again (an operator's decision). */
  reset(): void;
  /** Stops for good: pending and later calls reject with `source_closed`. */
  close(): void;
}

const OPTION_KEYS = [
  'issuer', 'auth', 'request', 'initial', 'fetch', 'clock', 'random', 'sleep', 'skewMs', 'jitter', 'timeoutMs', 'onAuthorityLost', 'circuit', 'backoff',
] as const;

/**
 * Creates a credential source for one lane. Create it once per lane and agent, and call
 * `get()` before each call the credential is for.
 *
 * @example
 * ```ts
 * const source = createCredentialSource({
 *   issuer: 'https://lanyard.example',
 *   auth: { refreshToken: process.env.LANYARD_REFRESH_TOKEN! },
 *   request: { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' },
 *   onAuthorityLost: ({ lane, code }) => orchestrator.report(lane, code),
 * });
 * const { token } = await source.get();
 * ```
 */
export function createCredentialSource(options: CredentialSourceOptions): CredentialSource {
  assertKnownKeys('createCredentialSource', options, OPTION_KEYS);
  const base = assertFetchableUrl('issuer', options.issuer).href.replace(/\/+$/, '');
  const fetch = options.fetch ?? defaultFetch;
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;
  const skewMs = integerOption('skewMs', options.skewMs, 30_000, 0, 3_600_000);
  const timeoutMs = integerOption('timeoutMs', options.timeoutMs, 10_000, 10, 300_000);
  const circuitFailures = integerOption('circuit.failures', options.circuit?.failures, 3, 1, 1_000);
  const backoffBaseMs = integerOption('backoff.baseMs', options.backoff?.baseMs, 1_000, 1, 3_600_000);
  const backoffMaxMs = integerOption('backoff.maxMs', options.backoff?.maxMs, 60_000, backoffBaseMs, 3_600_000);
  const jitter = options.jitter ?? 0.2;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw new TypeError('jitter must be a fraction between 0 and 1');
  if (!options.request || typeof options.request.tool !== 'string') throw new TypeError('request must be a credential request ({ tool, actions, … })');
  const body = JSON.stringify(options.request);
  const { apiKey, chain, signer } = authOf(options.auth, base);
  // An instance refreshes on the route that takes refresh tokens (on AWS, /v1/credentials is behind SigV4).
  const endpoint = `${base}${chain === undefined ? '/v1/credentials' : '/v1/instance/credentials'}`;

  const config: ScheduleConfig = { skewMs, jitter, circuitFailures, backoffBaseMs, backoffMaxMs, refreshTokens: chain !== undefined };
  const initial = options.initial === undefined ? undefined : parseCredential(options.initial);
  let schedule = initialState<Credential>(config, initial && scheduleCredential(config, initial, Math.min(clock(), Date.parse(initial.issuedAt)), random()));
  const closing = new AbortController();
  let inflight: Promise<Credential> | undefined;

  /** Feeds one event to the schedule (refresh-schedule.ts) and keeps its new state. */
  function step(event: ScheduleEvent<Credential>): ScheduleAction<Credential> {
    const { state, action } = next(schedule, event, clock());
    schedule = state;
    return action;
  }

  function tell(loss: AuthorityLoss | undefined): void {
    if (loss === undefined) return;
    try {
      options.onAuthorityLost?.(loss);
    } catch {
      // The callback's own failure must not hide the stop from the caller.
    }
  }

  /** Carries out an action that ends a call: a credential, or an error thrown (after telling of a lost authority). */
  function conclude(action: ScheduleAction<Credential>): Credential {
    if (action.type === 'hand_out') return action.credential;
    if (action.type === 'throw') {
      tell(action.loss);
      throw action.error;
    }
    if (action.type === 'refuse') throw action.error;
    throw new TypeError(`unexpected schedule action ${action.type}`);
  }

  /** One request to the issuer, turned into a credential or a typed error. */
  async function call(): Promise<{ credential: Credential; sentAt: number }> {
    const sentAt = clock();
    const signal = AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)]);
    const send = async (bearer: string | undefined) => {
      const headers = await headersFor(bearer);
      let response: Response;
      let text: string;
      try {
        response = await fetch(endpoint, { method: 'POST', headers, body, signal, redirect: 'error' });
        text = await response.text();
      } catch (cause) {
        if (schedule.closed) throw new IssuanceError('source_closed', 'the credential source is closed', {}, { cause });
        throw new IssuanceError('issuer_unavailable', 'the issuer could not be reached', {}, { cause });
      }
      return readAnswer(response, text, { ...(schedule.held && { lane: schedule.held.credential.lane }), signed: signer !== undefined, now: clock() });
    };
    if (chain === undefined) return { credential: await send(apiKey), sentAt };
    const credential = await chain.use(async (token) => {
      const answer = await send(token);
      const next = typeof answer.refreshToken === 'string' ? answer.refreshToken : undefined;
      const { refreshToken: _spent, ...rest } = answer;
      return { value: rest, ...(next !== undefined && { next }) };
    });
    return { credential, sentAt };
  }

  /** The request's headers: a bearer, or (IAM) the SigV4 signature over what is sent. */
  async function headersFor(bearer: string | undefined): Promise<Record<string, string>> {
    const headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (signer === undefined) return { ...headers, authorization: `Bearer ${bearer!}` };
    try {
      return await signer.sign({ method: 'POST', url: endpoint, headers, body });
    } catch (cause) {
      const reason = cause instanceof AwsSigningError ? cause.message : 'could not sign the request with AWS credentials';
      throw new IssuanceError('aws_credentials_unavailable', reason, {}, { cause });
    }
  }

  /** One refresh: wait out a backoff if the schedule says so, ask the issuer, and feed the outcome back. Only ever one at a time. */
  async function refreshOnce(): Promise<Credential> {
    const start = step({ type: 'flight' });
    if (start.type !== 'call') return conclude(start);
    if (start.waitMs > 0) await sleep(start.waitMs, closing.signal).catch(() => conclude({ type: 'refuse', error: sourceClosed() }));
    if (schedule.closed) throw sourceClosed();
    let answer: { credential: Credential; sentAt: number };
    try {
      answer = await call();
    } catch (caught) {
      const error = caught instanceof IssuanceError ? caught : new IssuanceError('issuer_unavailable', 'the issuer could not be reached', {}, { cause: caught });
      return conclude(step({ type: 'failed', error, draws: { backoff: random(), spread: random() }, final: isFinal(error) }));
    }
    const { credential, sentAt } = answer;
    // The issuer counts the lifetime from `issuedAt`, which it truncates to the second (JWT
    // `iat`): anchor there, but never after the request left nor more than a second before it,
    // so an issuer clock that runs ahead or far behind cannot stretch or void the lifetime.
    const anchor = Math.min(sentAt, Math.max(Date.parse(credential.issuedAt), sentAt - 1_000));
    return conclude(step({ type: 'answered', credential, anchor, draw: random() }));
  }

  function refreshShared(): Promise<Credential> {
    inflight ??= refreshOnce().finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function get(force: boolean): Promise<Credential> {
    const decision = step({ type: 'get', force });
    if (decision.type !== 'refresh') return conclude(decision);
    try {
      return await refreshShared();
    } catch (error) {
      // Every caller of the flight decides for itself whether the credential in hand still serves.
      if (!(error instanceof IssuanceError)) throw error;
      return conclude(step({ type: 'flight_failed', error }));
    }
  }

  return {
    get: () => get(false),
    refresh: () => get(true),
    reportAuthorityLost(loss) {
      const action = step({ type: 'authority_reported', code: loss.code, message: loss.message });
      if (action.type === 'report') tell(action.loss);
    },
    state: () => stateOf(schedule),
    reset() {
      step({ type: 'reset' });
    },
    close() {
      step({ type: 'close' });
      closing.abort();
    },
  };
}

/** What `state()` shows of the schedule. */
function stateOf(schedule: ScheduleState<Credential>): SourceState {
  const { held, nextAttemptAt, lastRefresh, stopped } = schedule;
  return {
    ...(held && { validUntil: held.validUntil, nextRefresh: Math.max(held.refreshTime, nextAttemptAt) }),
    ...(lastRefresh !== undefined && { lastRefresh }),
    consecutiveFailures: schedule.consecutiveFailures,
    consecutiveAuthFailures: schedule.authFailures,
    circuit: schedule.circuit,
    ...(stopped && { stopped: { code: stopped.code } }),
  };
}

/** Only a change of configuration fixes a missing AWS SDK package or region: the source stops, as for a wrong request. */
function isFinal(error: IssuanceError): boolean {
  return error.code === 'aws_credentials_unavailable' && error.cause instanceof AwsSigningError && !error.cause.retryable;
}

/** Exactly one way to authenticate, checked when the source is created. */
function authOf(auth: unknown, issuer: string): { apiKey?: string; chain?: RefreshTokenChain; signer?: AwsRequestSigner } {
  const given = (typeof auth === 'object' && auth !== null ? auth : {}) as Partial<Record<'apiKey' | 'refreshToken' | 'aws', unknown>>;
  const ways = (['apiKey', 'refreshToken', 'aws'] as const).filter((way) => given[way] !== undefined);
  const usage = 'auth is { apiKey }, { refreshToken } or { aws }';
  if (ways.length !== 1 || Object.keys(given).length !== 1) throw new TypeError(usage);
  if (typeof given.apiKey === 'string') return { apiKey: given.apiKey };
  if (typeof given.refreshToken === 'string') return { chain: createRefreshTokenChain(given.refreshToken) };
  if (isChain(given.refreshToken)) return { chain: given.refreshToken };
  if (given.aws !== undefined) {
    assertSigningOptions(given.aws, 'auth.aws', issuer);
    return { signer: createAwsSigner(given.aws) };
  }
  throw new TypeError(usage);
}

function isChain(value: unknown): value is RefreshTokenChain {
  return typeof value === 'object' && value !== null && typeof (value as RefreshTokenChain).use === 'function' && typeof (value as RefreshTokenChain).current === 'function';
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
