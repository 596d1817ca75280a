/** Builds a middy HTTP handler: error mapping outermost, then an optional JSON body parser. */
import middy from '@middy/core';
import type { Log } from '../ports/log.ts';
import { errorResponder, jsonBody, type ParsedEvent } from './middleware.ts';
import type { HttpEvent, HttpResult } from './types.ts';

export type HttpHandler = (event: HttpEvent, context?: unknown) => Promise<HttpResult>;

export function httpHandler(
  options: { log: Log; jsonBodyMaxBytes?: number },
  handle: (event: ParsedEvent) => Promise<HttpResult>,
): HttpHandler {
  // timeoutEarlyInMillis 0: the same handler also runs behind the local server, with no Lambda deadline.
  const chain = middy<ParsedEvent, HttpResult>({ timeoutEarlyInMillis: 0 }).use(errorResponder(options.log));
  if (options.jsonBodyMaxBytes !== undefined) chain.use(jsonBody({ maxBytes: options.jsonBodyMaxBytes }));
  const handler = chain.handler((event) => handle(event));
  return (event, context) => handler(event, (context ?? {}) as never);
}
