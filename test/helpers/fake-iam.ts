/**
 * An IAM that keeps inline role policies the way the service does: ListRolePolicies names
 * them, GetRolePolicy answers them URL-encoded, PutRolePolicy replaces one without any
 * condition (last writer wins) and refuses a write that takes the role's inline policies
 * together over 10,240 non-whitespace characters (LimitExceeded). `before` runs at the start of
 * every call, so a test can hold a call to force an interleaving.
 */
import {
  GetRolePolicyCommand,
  IAMClient,
  IAMServiceException,
  ListRolePoliciesCommand,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { mockClient } from 'aws-sdk-client-mock';

export const ROLE_POLICY_SIZE_QUOTA = 10_240;

type Call = 'ListRolePolicies' | 'GetRolePolicy' | 'PutRolePolicy';

export function fakeIam(roles: readonly string[] = ['tickets']) {
  const client = new IAMClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  const policies = new Map<string, Map<string, string>>(roles.map((role) => [role, new Map()]));
  const hooks: { before: (call: Call, input: { RoleName?: string; PolicyName?: string; PolicyDocument?: string }) => Promise<void> } = {
    before: () => Promise.resolve(),
  };
  const roleOf = (role?: string) => {
    const found = policies.get(role ?? '');
    if (!found) throw new NoSuchEntityException({ message: `The role with name ${role} cannot be found.`, $metadata: {} });
    return found;
  };
  const size = (text: string) => text.replace(/\s/g, '').length;

  mock.on(ListRolePoliciesCommand).callsFake(async (input: { RoleName?: string }) => {
    await hooks.before('ListRolePolicies', input);
    return { PolicyNames: [...roleOf(input.RoleName).keys()].sort(), IsTruncated: false };
  });
  mock.on(GetRolePolicyCommand).callsFake(async (input: { RoleName?: string; PolicyName?: string }) => {
    await hooks.before('GetRolePolicy', input);
    const document = roleOf(input.RoleName).get(input.PolicyName ?? '');
    if (document === undefined) {
      throw new NoSuchEntityException({ message: `The role policy with name ${input.PolicyName} cannot be found.`, $metadata: {} });
    }
    return { RoleName: input.RoleName, PolicyName: input.PolicyName, PolicyDocument: encodeURIComponent(document) };
  });
  mock.on(PutRolePolicyCommand).callsFake(async (input: { RoleName?: string; PolicyName?: string; PolicyDocument?: string }) => {
    await hooks.before('PutRolePolicy', input);
    const role = roleOf(input.RoleName);
    const document = input.PolicyDocument ?? '';
    JSON.parse(document);
    const others = [...role.entries()].filter(([name]) => name !== input.PolicyName).reduce((sum, [, text]) => sum + size(text), 0);
    if (others + size(document) > ROLE_POLICY_SIZE_QUOTA) {
      throw new IAMServiceException({ name: 'LimitExceededException', message: `Maximum policy size of ${ROLE_POLICY_SIZE_QUOTA} bytes exceeded for role ${input.RoleName}`, $fault: 'client', $metadata: {} });
    }
    role.set(input.PolicyName ?? '', document);
    return {};
  });

  /** The statements of one inline policy of a role, as IAM holds them now. */
  const statements = <T = Record<string, unknown>>(policyName: string, role = roles[0] ?? 'tickets'): T[] => {
    const document = policies.get(role)?.get(policyName);
    return document === undefined ? [] : (JSON.parse(document) as { Statement: T[] }).Statement;
  };
  const put = (role: string, policyName: string, document: unknown) => roleOf(role).set(policyName, JSON.stringify(document));
  return { client, mock, policies, hooks, statements, put };
}

/** A promise with its resolve, for holding a fake call until the test lets it go. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
