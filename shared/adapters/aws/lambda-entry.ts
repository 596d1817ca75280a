/**
 * Turns a handler factory into a Lambda `handler`. The AWS runtime (clients, caches, the
 * signer) is built once per container, on the first invocation, and shared by every later
 * one (STYLE habit 4). The local server imports the same files but only calls the factory,
 * so it never loads the AWS composition root.
 */
import type { IssuerRuntime } from '../../runtime.ts';

export function onAws<E, R>(factory: (runtime: IssuerRuntime) => (event: E, context?: unknown) => Promise<R>): (event: E, context?: unknown) => Promise<R> {
  let built: Promise<(event: E, context?: unknown) => Promise<R>> | undefined;
  return async (event, context) => {
    built ??= import('./runtime.ts')
      .then((m) => factory(m.awsRuntimeFromEnv()))
      .catch((error: unknown) => {
        // A failed start-up is not cached: the next invocation tries to build the runtime again.
        built = undefined;
        throw error;
      });
    return (await built)(event, context);
  };
}
