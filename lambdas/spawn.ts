/**
 * `POST /v1/spawn` (docs/http.md): an orchestrator gives a new agent instance its own identity,
 * its first credentials and a refresh token. Thin on purpose: the rules live in
 * `shared/spawn/spawn.ts`.
 */
import { authenticate, requireKind } from '../shared/http/authenticate.ts';
import { isLanyardError } from '../shared/domain/errors.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { requestIdOf } from '../shared/http/middleware.ts';
import { json } from '../shared/http/responses.ts';
import { recordDenial } from '../shared/issuance/issue-credential.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { parseWith } from '../shared/domain/schemas.ts';
import { SpawnRequestSchema, spawnInstance } from '../shared/spawn/spawn.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

/** Up to ten credential requests of a few hundred bytes each. */
export const SPAWN_REQUEST_MAX_BYTES = 64 * 1024;

export function createSpawnHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log, jsonBodyMaxBytes: SPAWN_REQUEST_MAX_BYTES }, async (event) => {
    const requestId = requestIdOf(event);
    const at = new Date(runtime.clock.now()).toISOString();
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event).catch(async (error: unknown) => {
      if (isLanyardError(error) && error.code === 'unauthenticated') await recordDenial(runtime.decisions, { requestId, at }, error);
      throw error;
    });
    try {
      requireKind(principal, 'orchestrator');
    } catch (error) {
      // A caller of the wrong kind is a refused decision too, like every other refusal on this path.
      if (isLanyardError(error)) await recordDenial(runtime.decisions, { requestId, at, principal: principal.id, ...(principal.identity && { identity: principal.identity }) }, error);
      throw error;
    }
    const parsed = parseWith(SpawnRequestSchema, event.parsedBody);
    if (!parsed.ok) {
      // As on POST /v1/credentials: naming fields the contract lacks is a refused decision; a malformed body writes nothing.
      if (parsed.failure.onlyUnknownFields) {
        // Only unknown fields were wrong, so the class named is well-formed.
        const classId = (event.parsedBody as { identity?: unknown }).identity;
        await recordDenial(runtime.decisions, { requestId, at, principal: principal.id, ...(typeof classId === 'string' && { identity: classId }) }, parsed.failure.error);
      }
      throw parsed.failure.error;
    }
    const spawned = await spawnInstance(runtime, { requestId, principal }, parsed.value);
    return json(201, spawned);
  });
}

export const handler = onAws(createSpawnHandler);
