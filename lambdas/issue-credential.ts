/**
 * `POST /v1/credentials` (docs/http.md): authenticate the caller, parse the body, run the
 * issuance decision, answer 201 with the credential. Thin on purpose: the decision lives in
 * `shared/issuance/issue-credential.ts`.
 *
 * The same function serves `POST /v1/instance/credentials`, the route agent instances refresh
 * on. On AWS that route has no gateway authorizer (the IAM authorizer would refuse a bearer
 * token before this function runs), so here it accepts ONLY a refresh token (`lr_…`): anything
 * else is `401 unauthenticated`, and the caller-identity path (IAM ARN or local API key) is
 * never taken for it.
 */
import { authenticate, bearerToken, sessionInstanceOf } from '../shared/http/authenticate.ts';
import { parseIdentityId } from '../shared/domain/model.ts';
import { isLanyardError, unauthenticated } from '../shared/domain/errors.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { requestIdOf, type ParsedEvent } from '../shared/http/middleware.ts';
import type { HttpResult } from '../shared/http/types.ts';
import { json } from '../shared/http/responses.ts';
import { issueCredential, recordDenial } from '../shared/issuance/issue-credential.ts';
import { authenticateRefreshToken, looksLikeRefreshToken, rotateRefreshToken } from '../shared/spawn/refresh-tokens.ts';
import type { HttpEvent } from '../shared/http/types.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { CredentialRequestSchema, parseWith } from '../shared/domain/schemas.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';

/** A credential request is a few hundred bytes; 16 KiB leaves room for task context and nothing more. */
export const CREDENTIAL_REQUEST_MAX_BYTES = 16 * 1024;

/** Where agent instances present their refresh token (no gateway authorizer on AWS). */
export const INSTANCE_CREDENTIALS_PATH = '/v1/instance/credentials';

/**
 * Whether the request came in on the instance route. The route key is what API Gateway (and
 * the local server) matched; the raw path is checked too, by suffix, so a custom-domain base
 * path still counts. A false positive only narrows what is accepted.
 */
export function isInstanceRoute(event: HttpEvent): boolean {
  const routeKey = event.routeKey || event.requestContext.routeKey;
  return routeKey === `POST ${INSTANCE_CREDENTIALS_PATH}` || (event.rawPath ?? '').endsWith(INSTANCE_CREDENTIALS_PATH);
}

export function createIssueCredentialHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log, jsonBodyMaxBytes: CREDENTIAL_REQUEST_MAX_BYTES }, async (event) => {
    const bearer = bearerToken(event);
    if (bearer !== undefined && looksLikeRefreshToken(bearer)) return issueForInstance(runtime, event, bearer);
    const requestId = requestIdOf(event);
    const at = new Date(runtime.clock.now()).toISOString();
    if (isInstanceRoute(event)) {
      // No refresh token on the instance route: refused like any unknown caller, and recorded.
      const error = unauthenticated();
      await recordDenial(runtime.decisions, { requestId, at }, error);
      throw error;
    }
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event).catch(async (error: unknown) => {
      // A refused caller is a decision too; its record names no principal because there is none.
      if (isLanyardError(error) && error.code === 'unauthenticated') await recordDenial(runtime.decisions, { requestId, at }, error);
      throw error;
    });
    const parsed = parseWith(CredentialRequestSchema, event.parsedBody);
    if (!parsed.ok) {
      // A well-formed request naming fields the contract lacks is a refused decision; a malformed one writes nothing.
      if (parsed.failure.onlyUnknownFields) {
        await recordDenial(runtime.decisions, { requestId, at, principal: principal.id, ...(principal.identity && { identity: principal.identity }) }, parsed.failure.error);
      }
      throw parsed.failure.error;
    }
    const instance = sessionInstanceOf(principal, runtime.config.authMode, event);
    const context = { requestId, principal, ...(instance !== undefined && { identity: instance, sessionInstance: true as const }) };
    const issued = await issueCredential({ ...runtime, issuer: runtime.config.issuer }, context, parsed.value);
    return json(201, issued);
  });
}

/**
 * An agent instance presenting its refresh token (`lr_…`, from `POST /v1/spawn`): it acts as
 * the instance, the spawning orchestrator is the principal of record, and the answer carries
 * the next refresh token while the presented one is spent (shared/spawn/refresh-tokens.ts).
 */
async function issueForInstance(runtime: IssuerServices, event: ParsedEvent, token: string): Promise<HttpResult> {
  const requestId = requestIdOf(event);
  const session = await authenticateRefreshToken(runtime, token, requestId);
  const parsed = parseWith(CredentialRequestSchema, event.parsedBody);
  if (!parsed.ok) {
    // As on the caller path: naming fields the contract lacks is a refused decision; a malformed body writes nothing.
    if (parsed.failure.onlyUnknownFields) {
      const instance = parseIdentityId(session.instance)?.instance;
      const about = { requestId, at: new Date(runtime.clock.now()).toISOString(), principal: session.principal.id, identity: session.instance };
      await recordDenial(runtime.decisions, { ...about, ...(instance !== undefined && { instance }) }, parsed.failure.error);
    }
    throw parsed.failure.error;
  }
  const issued = await issueCredential({ ...runtime, issuer: runtime.config.issuer }, { requestId, principal: session.principal, identity: session.instance }, parsed.value);
  const refreshToken = await rotateRefreshToken(runtime, session, requestId);
  return json(201, { ...issued, refreshToken });
}

export const handler = onAws(createIssueCredentialHandler);
