/**
 * The admin handler. On AWS it is the admin Lambda, invoked directly with one command object
 * as its event (IAM decides who may invoke it; `actor` names the human or automation behind
 * the call). On the embedded default the same file serves `POST /v1/admin`, for admin
 * principals only.
 */
import { authenticate, requireKind } from '../shared/http/authenticate.ts';
import { parseAdminCommand, runAdminCommand } from '../shared/admin/admin.ts';
import { failClosed, invalidRequest } from '../shared/domain/errors.ts';
import { httpHandler, type HttpHandler } from '../shared/http/handler.ts';
import { isHttpEvent, requestIdOf } from '../shared/http/middleware.ts';
import { json } from '../shared/http/responses.ts';
import type { HttpResult } from '../shared/http/types.ts';
import { describeError } from '../shared/ports/log.ts';
import type { IssuerServices } from '../shared/ports/services.ts';
import { onAws } from '../shared/bootstrap/aws/lambda-entry.ts';
import { randomId } from '../shared/domain/caller-keys.ts';

/** Policy documents can be long; a megabyte holds thousands of grants. */
export const ADMIN_REQUEST_MAX_BYTES = 1024 * 1024;

export function createAdminHttpHandler(runtime: IssuerServices): HttpHandler {
  return httpHandler({ log: runtime.log, jsonBodyMaxBytes: ADMIN_REQUEST_MAX_BYTES }, async (event) => {
    const principal = await authenticate(runtime.policy, runtime.config.authMode, event);
    requireKind(principal, 'admin');
    const command = parseAdminCommand(event.parsedBody);
    // Over HTTP the caller is known: the audit names it, and a body cannot name someone else.
    if ('actor' in command && command.actor !== undefined && command.actor !== principal.id) {
      throw invalidRequest('actor', `over HTTP the actor is the authenticated admin principal (${principal.id}); leave actor out`);
    }
    const requestId = requestIdOf(event);
    const result = await runAdminCommand(runtime, command, { actor: principal.id, requestId });
    runtime.log.info('admin command', { requestId, actor: principal.id, command: command.command });
    return json(200, { result });
  });
}

export type AdminInvocationResult = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; retryable: boolean; requestId: string } };

/** Direct invocation: the event is the command; the answer says ok or carries the typed error. */
export function createAdminInvokeHandler(runtime: IssuerServices): (event: unknown, context?: unknown) => Promise<AdminInvocationResult> {
  return async (event, context) => {
    const requestId = (context as { awsRequestId?: string } | undefined)?.awsRequestId ?? randomId('req');
    try {
      const command = parseAdminCommand(event);
      const actor = (event as { actor?: unknown }).actor;
      const result = await runAdminCommand(runtime, command, { actor: typeof actor === 'string' ? actor : 'admin-lambda', requestId });
      return { ok: true, result };
    } catch (error) {
      const typed = failClosed(error);
      if (typed.status >= 500) runtime.log.error('admin command failed closed', { requestId, error: describeError(error) });
      return { ok: false, error: { ...typed.context, code: typed.code, message: typed.message, retryable: typed.retryable, requestId } };
    }
  };
}

/** One handler for both shapes: an HTTP API event goes through HTTP, anything else is a command. */
export function createAdminHandler(runtime: IssuerServices): (event: unknown, context?: unknown) => Promise<HttpResult | AdminInvocationResult> {
  const http = createAdminHttpHandler(runtime);
  const invoke = createAdminInvokeHandler(runtime);
  return (event, context) => (isHttpEvent(event) ? http(event, context) : invoke(event, context));
}

// The admin function writes upstream secrets and tool-role policies: the full AWS root, with the vault and the STS session revoker.
export const handler = onAws(createAdminHandler, async () => (await import('../shared/bootstrap/aws/runtime.ts')).awsServicesFromEnv());
