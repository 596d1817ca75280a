/**
 * The refresh token of one agent instance, shared by every credential source of that instance.
 *
 * The issuer's refresh tokens are single use and rotate on every use; presenting a spent one
 * revokes the whole instance (it looks like a stolen copy). So the sources of one instance
 * (one per lane) must never present the same token twice, not even concurrently: they share
 * one chain, which lends the current token to one request at a time and keeps the token each
 * answer carries. A request whose answer was lost leaves the spent token in the chain: the
 * issuer answers its retry once, within a 60 s grace, with a fresh successor (docs/spawn.md).
 */

export interface RefreshTokenChain {
  /** The token the next request will present. */
  current(): string;
  /**
   * Runs `use` with the current token, one use at a time. When it returns `next`, that token
   * replaces the current one before the next use starts.
   */
  use<T>(use: (token: string) => Promise<{ readonly value: T; readonly next?: string }>): Promise<T>;
}

const REFRESH_TOKEN = /^lr_[A-Za-z0-9_-]{16,128}$/;

/**
 * @example
 * ```ts
 * const { refreshToken, credentials } = spawnAnswer;
 * const chain = createRefreshTokenChain(refreshToken);
 * const tickets = createCredentialSource({ issuer, auth: { refreshToken: chain }, request: ticketsRead });
 * const crm = createCredentialSource({ issuer, auth: { refreshToken: chain }, request: crmRead });
 * ```
 */
export function createRefreshTokenChain(initial: string): RefreshTokenChain {
  if (typeof initial !== 'string' || !REFRESH_TOKEN.test(initial)) throw new TypeError('a refresh token is lr_ followed by base64url');
  let token = initial;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    current: () => token,
    use<T>(use: (token: string) => Promise<{ readonly value: T; readonly next?: string }>): Promise<T> {
      const run = queue.then(async () => {
        const { value, next } = await use(token);
        if (next !== undefined) token = next;
        return value;
      });
      queue = run.catch(() => undefined);
      return run;
    },
  };
}
