/** The small policy a first run starts with, so `npm start` can issue a credential at once. */
import type { PolicyDocument } from '../shared/policy/policy-file.ts';

export const EXAMPLE_POLICY: PolicyDocument = {
  tools: [
    {
      id: 'tickets',
      audience: 'https://tickets.example.internal',
      actions: { read: 'read', list: 'read', reply: 'write', escalate: 'write', purge: 'admin' },
      enabled: true,
    },
  ],
  roles: [{ id: 'support-triage', version: 1, actions: ['tickets:read', 'tickets:list', 'tickets:reply'], approvedBy: 'example@lanyard.local' }],
  identities: [{ id: 'support-triage/dev', owner: 'team-support', purpose: 'triage incoming tickets (example)', status: 'active' }],
  grants: [
    {
      identity: 'support-triage/dev',
      role: 'support-triage@1',
      tenants: ['acme', 'globex'],
      maxTtlSeconds: 900,
      kinds: ['jwt'],
      quotaBucket: 'support-llm',
    },
  ],
  principals: [
    { id: 'triage-worker-1', kind: 'agent', identity: 'support-triage/dev' },
    { id: 'resource-server', kind: 'verifier' },
    { id: 'admin', kind: 'admin' },
  ],
};
