/**
 * Admin commands (DESIGN §8): one JSON command per call, `{ "command": "…", … }`. The admin
 * Lambda takes the object as its event; the embedded default takes it at `POST /v1/admin`
 * from admin principals. Every command is parsed by a strict schema before anything runs.
 */
import { z } from 'zod';
import { IDENTITY_ID } from './domain.ts';
import { invalidRequest } from './errors.ts';
import { applyPolicy, parsePolicyDocument } from './policy-file.ts';
import type { IssuerRuntime } from './runtime.ts';
import { parseWith } from './schemas.ts';

const Actor = z.string().min(1).max(256);

export const AdminCommandSchema = z.discriminatedUnion('command', [
  z.object({ command: z.literal('policy.apply'), policy: z.record(z.string(), z.unknown()), actor: Actor.optional() }).strict(),
  z.object({ command: z.literal('tool.list') }).strict(),
  z.object({ command: z.literal('role.list') }).strict(),
  z.object({ command: z.literal('identity.list') }).strict(),
  z.object({ command: z.literal('principal.list') }).strict(),
  z.object({ command: z.literal('grant.list'), identity: z.string().regex(IDENTITY_ID).optional() }).strict(),
]);

export type AdminCommand = z.infer<typeof AdminCommandSchema>;

export interface AdminContext {
  /** Who asked: the admin principal, or the IAM caller of the admin Lambda. */
  readonly actor: string;
  readonly requestId: string;
}

export function parseAdminCommand(input: unknown): AdminCommand {
  if (typeof input !== 'object' || input === null || typeof (input as { command?: unknown }).command !== 'string') {
    throw invalidRequest('command', 'an admin command is a JSON object with a "command" string');
  }
  const parsed = parseWith(AdminCommandSchema, input);
  if (!parsed.ok) throw parsed.failure.error;
  return parsed.value;
}

export async function runAdminCommand(runtime: IssuerRuntime, command: AdminCommand, _ctx: AdminContext): Promise<unknown> {
  const { store } = runtime;
  switch (command.command) {
    case 'policy.apply': {
      const doc = parsePolicyDocument(command.policy);
      const result = await applyPolicy(store, doc, new Date(runtime.clock.now()).toISOString());
      runtime.policy.invalidate();
      return result;
    }
    case 'tool.list':
      return { tools: await store.listTools() };
    case 'role.list':
      return { roles: await store.listRoleVersions() };
    case 'identity.list':
      return { identities: await store.listIdentities() };
    case 'principal.list':
      return { principals: await store.listPrincipals() };
    case 'grant.list': {
      const identities = command.identity ? [command.identity] : (await store.listIdentities()).map((i) => i.id);
      const grants = (await Promise.all(identities.map((id) => store.listGrants(id)))).flat();
      return { grants };
    }
  }
}
