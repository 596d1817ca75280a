/**
 * Turns a handler factory into a Lambda `handler`. The AWS runtime (clients, caches, the
 * signer) is built once per container, on the first invocation, and shared by every later
 * one: clients are created once, outside the handler. The local server imports the same files but only calls the factory,
 * so it never loads the AWS composition root.
 *
 * By default a function is built on the core services (`core-services.ts`); the admin function
 * passes `awsServicesFromEnv` (`runtime.ts`: the vault and the STS session revoker too). The
 * builder is imported where it is named, so a bundle holds only the root its function uses.
 */
import { issuerUnavailable } from '../../domain/errors.ts';
import { isHttpEvent, requestIdOf } from '../../http/middleware.ts';
import { errorResponse } from '../../http/responses.ts';
import type { IssuerServices } from '../../ports/services.ts';

type Built<E, R> = (event: E, context?: unknown) => Promise<R>;

export function onAws<E, R>(
  factory: (runtime: IssuerServices) => Built<E, R>,
  build: () => Promise<IssuerServices> = async () => (await import('./core-services.ts')).awsCoreServicesFromEnv(),
): Built<E, R> {
  let built: Promise<Built<E, R>> | undefined;
  return async (event, context) => {
    built ??= build()
      .then(factory)
      .catch((error: unknown) => {
        // A failed start-up is not cached: the next invocation tries to build the runtime again.
        built = undefined;
        throw error;
      });
    let handler: Built<E, R>;
    try {
      handler = await built;
    } catch (error) {
      // An HTTP caller gets the issuer's typed fail-closed answer, not API Gateway's bare 500;
      // the cause goes to the function's log, never to the wire.
      if (!isHttpEvent(event)) throw error;
      console.error(JSON.stringify({ level: 'ERROR', message: 'issuer runtime failed to start', error: error instanceof Error ? error.message : String(error) }));
      return errorResponse(issuerUnavailable(error), requestIdOf(event)) as R;
    }
    return handler(event, context);
  };
}
