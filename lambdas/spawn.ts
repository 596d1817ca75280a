/**
 * `POST /v1/spawn` (DESIGN §6): an orchestrator gives a new agent instance its own identity,
 * its first credentials and a refresh token. Thin on purpose: the rules live in
 * `shared/spawn.ts`.
 */
import { authenticate, requireKind } from '../shared/authenticate.ts';
import { isLanyardError } from '../shared/errors.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { requestIdOf } from '../shared/http/middleware.ts';
import { json } from '../shared/http/responses.ts';
import { recordDenial } from '../shared/issue-credential.ts';
import type { IssuerRuntime } from '../shared/runtime.ts';
import { parseWith } from '../shared/schemas.ts';
import { SpawnRequestSchema, spawnInstance } from '../shared/spawn.ts';
import { onAws } from '../shared/adapters/aws/lambda-entry.ts';

/** Up to ten credential requests of a few hundred bytes each. */
export const SPAWN_REQUEST_MAX_BYTES = 64 * 1024;

export function createSpawnHandler(runtime: IssuerRuntime): HttpHandler {
  return httpHandler({ log: runtime.log, jsonBodyMaxBytes: SPAWN_REQUEST_MAX_BYTES }, async (event) => {
    const requestId = requestIdOf(event);
    const at = new Date(runtime.clock.now()).toISOString();
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event).catch(async (error: unknown) => {
      if (isLanyardError(error) && error.code === 'unauthenticated') await recordDenial(runtime.decisions, { requestId, at }, error);
      throw error;
    });
    requireKind(principal, 'orchestrator');
    const parsed = parseWith(SpawnRequestSchema, event.parsedBody);
    if (!parsed.ok) throw parsed.failure.error;
    const spawned = await spawnInstance(runtime, { requestId, principal }, parsed.value);
    return json(201, spawned);
  });
}

export const handler = onAws(createSpawnHandler);
