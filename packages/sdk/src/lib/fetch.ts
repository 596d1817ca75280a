/** Small helpers shared by the JWKS cache and the revocation follower. */

/** The part of WHATWG `fetch` the SDK uses; inject your own to add proxies, tracing or tests. */
export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** Milliseconds since the epoch; inject to freeze time in tests. */
export type Clock = () => number;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Parses a URL the verifier will fetch keys or revocations from. Only `https:` is allowed,
 * plus plain `http:` on loopback for the embedded issuer (`lanyard dev`): keys fetched over
 * an open network could be replaced in transit. Throws at start-up, not on the first request.
 */
export function assertFetchableUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch (error) {
    throw new TypeError(`${name} is not a valid URL`, { cause: error });
  }
  const loopback = url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !loopback) {
    throw new TypeError(`${name} must use https: (http: is allowed on loopback only)`);
  }
  return url;
}

/** Refuses option keys this SDK does not know: a typo must not silently disable a check. */
export function assertKnownKeys(name: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${name}: unknown option "${key}"`);
  }
}

/** Checks an optional integer option; returns the default when absent. */
export function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

/** The default `fetch`, bound late so a test that replaces `globalThis.fetch` still works. */
export const defaultFetch: Fetch = (input, init) => globalThis.fetch(input, init);
