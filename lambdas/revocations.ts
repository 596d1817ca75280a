/**
 * `GET /v1/revocations?after=<cursor>&limit=<n>`: the live revocations in feed order, for
 * resource servers (verifier principals) and admins. See shared/revocation/revocation-feed.ts for why
 * the cursor never skips a revocation that commits late.
 */
import { authenticate, requireKind } from '../shared/http/authenticate.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { json } from '../shared/http/responses.ts';
import { parseCursor, parseLimit, readFeed } from '../shared/revocation/revocation-feed.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

export function createRevocationsHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log }, async (event) => {
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event);
    requireKind(principal, 'verifier', 'admin');
    const query = event.queryStringParameters ?? {};
    const page = await readFeed(runtime.store, { afterSeq: parseCursor(query.after), limit: parseLimit(query.limit), nowMs: runtime.clock.now() });
    return json(200, page);
  });
}

export const handler = onAws(createRevocationsHandler);
