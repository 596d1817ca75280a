/**
 * Revoking STS sessions (docs/domain.md#credentials). An STS session cannot be deleted, so a revocation puts a
 * `Deny *` on the tool's role for the sessions it covers that were issued at or before the
 * cut-off (`aws:TokenIssueTime`). Sessions carry the `lanyard:*` session tags (sts-sessions.ts),
 * so every target kind is matched by tag:
 *
 * | target | condition on the session |
 * | --- | --- |
 * | lane | `lanyard:lane` equals the lane |
 * | identity | `lanyard:identity` equals it (a class identity: or is one of its instances, `<class>@*`) |
 * | tenant | `lanyard:tenant` equals it |
 * | tool (optionally of one identity) | `lanyard:lane` is a lane of that tool (`<identity or *>:<tool>:<level>:*`), so a role shared by two tools keeps the other's sessions |
 * | credential | `lanyard:credential` equals the credential id |
 *
 * The statements live in one inline role policy, `lanyard-revocations`, one statement per
 * target: a later cut-off for a target replaces an earlier one, an earlier one changes nothing.
 *
 * Size: IAM counts all inline policies of a role together against 10,240 characters,
 * whitespace not counted (IAM User Guide, "IAM and AWS STS quotas"; GetAccountSummary
 * `RolePolicySizeQuota`), so the other inline policies (ListRolePolicies + GetRolePolicy) count
 * too. A lane statement is about 270 characters, so a role with no other inline policy holds
 * about 37 live denies. A statement stops mattering once every session it covers has expired:
 * `STS_MAX_DURATION_SECONDS` (1 h) plus `CLOCK_SKEW_MARGIN_SECONDS` after its cut-off, and it is
 * pruned on the next write. A revocation that still does not fit is refused with a typed
 * `conflict` (`stsRevocationCapacity`) before anything is written; the caller (revoke.ts) has
 * already committed the revocation itself, so JWTs are dead and only the sessions wait out
 * their hour.
 *
 * Concurrency: IAM has no conditional write. The statements are therefore kept in a version
 * item of the Lanyard table (`STSDENY#<role ARN>`), changed only by a conditional write from the
 * version read (retried on a conflict); the role policy is rendered from that item. After its
 * `PutRolePolicy` a writer reads the item again and, if another writer has moved it on, writes
 * the newer rendering too, until the policy it last wrote is the latest version. So the last
 * `PutRolePolicy` always carries every committed statement, whichever writer lands last.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetRolePolicyCommand, ListRolePoliciesCommand, PutRolePolicyCommand, type IAMClient } from '@aws-sdk/client-iam';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ACCESS_LEVELS, parseIdentityId, parseLaneId, revocationTargetKey, type RevocationTarget } from '../../domain/model.ts';
import { failClosed, invalidRequest, LanyardError } from '../../domain/errors.ts';
import { systemClock, type Clock } from '../../ports/index.ts';
import { CLOCK_SKEW_MARGIN_SECONDS } from '../../revocation/revoke.ts';
import { STS_MAX_DURATION_SECONDS, toSessionTagValue } from './sts-sessions.ts';

export const REVOCATION_POLICY_NAME = 'lanyard-revocations';
/** IAM's limit for all inline policies of a role together (whitespace excluded). */
export const INLINE_POLICY_MAX_CHARS = 10_240;
/** A deny is dropped this long after its cut-off: every session it covers has expired by then. */
export const PRUNE_AFTER_SECONDS = STS_MAX_DURATION_SECONDS + CLOCK_SKEW_MARGIN_SECONDS;
/** Conditional-write conflicts, and newer versions met after writing, tolerated before failing closed. */
const MAX_ATTEMPTS = 8;

const TAG = (key: string) => `aws:PrincipalTag/lanyard:${key}`;
const LANE_SID_PREFIX = 'LanyardLane';
const TARGET_SID_PREFIX = 'LanyardDeny';
const LANYARD_SID = /^Lanyard(?:Lane|Deny)[0-9a-f]{24}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;

type Condition = Record<string, Record<string, string | string[]>>;

interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: Condition;
}

interface PolicyDocument {
  readonly Version: string;
  readonly Statement: PolicyStatement[];
}

/** Any revocation target but a signing key (a key revocation reaches no session). */
export type StsRevocationTarget = Exclude<RevocationTarget, { key: string }>;

export interface RevokeSessionsInput {
  readonly roleArn: string;
  readonly target: RevocationTarget;
  /** ISO 8601 instant: covered sessions issued at or before it are denied. */
  readonly cutoff: string;
}

export interface RevokeSessionsResult {
  readonly roleName: string;
  /** False when the policy already held this target with the same or a later cut-off. */
  readonly changed: boolean;
  /** Lanyard deny statements in the policy after the write. */
  readonly statements: number;
  /** Statements dropped because every session they covered has expired. */
  readonly pruned: number;
  /** Non-whitespace characters of all the role's inline policies after the write (IAM allows `INLINE_POLICY_MAX_CHARS`). */
  readonly inlinePolicyChars: number;
}

export interface StsSessionRevokerOptions {
  /** Created once by the caller, at module scope. */
  readonly iam: IAMClient;
  /** The Lanyard table's client and name: its per-role version item serializes writers. */
  readonly dynamo: DynamoDBClient;
  readonly tableName: string;
  /** @default systemClock */
  readonly clock?: Clock;
}

/**
 * The IAM role name in a role ARN, paths included or not.
 *
 * @example
 * ```ts
 * roleNameFromArn('arn:aws:iam::123456789012:role/lanyard/tools/tickets'); // 'tickets'
 * ```
 */
export function roleNameFromArn(roleArn: string): string {
  const name = ROLE_ARN.exec(roleArn)?.[1];
  if (name === undefined) throw invalidRequest('roleArn', `"${roleArn}" is not an IAM role ARN`);
  return name;
}

/** Non-whitespace characters: what IAM counts against its size quotas. */
export function policyChars(text: string): number {
  return text.replace(/\s/g, '').length;
}

/**
 * The typed refusal when a role's inline policies cannot take one more deny. The revocation
 * itself is already recorded by then (revoke.ts): the message says what still holds.
 */
export function stsRevocationCapacity(roleName: string, needed: number, liveStatements: number): LanyardError {
  return new LanyardError(
    'conflict',
    `the inline policies of role ${roleName} would be ${needed} characters with this deny; IAM allows ${INLINE_POLICY_MAX_CHARS} for all of them. ` +
      `The revocation is recorded and blocks new credentials, but live STS sessions it covers on this role stay valid until they expire (at most ${STS_MAX_DURATION_SECONDS} s). ` +
      `Denies older than ${PRUNE_AFTER_SECONDS} s are pruned on the next revocation: retry then, or remove other inline policies from the role.`,
    { context: { field: 'target', role: roleName, maxPolicyChars: INLINE_POLICY_MAX_CHARS, neededPolicyChars: needed, liveStatements } },
  );
}

interface State {
  /** 0 when the role has no version item yet. */
  readonly version: number;
  readonly statements: PolicyStatement[];
}

interface InlinePolicies {
  /** The `lanyard-revocations` policy as IAM has it now, if any. */
  readonly ours: PolicyDocument | undefined;
  /** Non-whitespace characters of every other inline policy of the role. */
  readonly otherChars: number;
}

/**
 * @example
 * ```ts
 * const revoker = new StsSessionRevoker({ iam: new IAMClient({}), dynamo, tableName: 'lanyard' });
 * await revoker.revokeSessions({ roleArn, target: { identity: 'support-triage/prod' }, cutoff: revocation.cutoff });
 * ```
 */
export class StsSessionRevoker {
  readonly #iam: IAMClient;
  readonly #table: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #clock: Clock;

  constructor(options: StsSessionRevokerOptions) {
    if (!options?.iam) throw new Error('StsSessionRevoker: an IAMClient is required');
    if (!options.dynamo || !options.tableName) throw new Error('StsSessionRevoker: the Lanyard table (dynamo, tableName) is required');
    this.#iam = options.iam;
    this.#table = DynamoDBDocumentClient.from(options.dynamo, { marshallOptions: { removeUndefinedValues: true } });
    this.#tableName = options.tableName;
    this.#clock = options.clock ?? systemClock;
  }

  async revokeSessions(input: RevokeSessionsInput): Promise<RevokeSessionsResult> {
    const roleName = roleNameFromArn(input.roleArn);
    const cutoffMs = Date.parse(input.cutoff);
    if (Number.isNaN(cutoffMs)) throw invalidRequest('cutoff', `"${input.cutoff}" is not an ISO 8601 instant`);
    const deny = denyStatement(input.target, cutoffMs);

    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const [state, inline] = await Promise.all([this.#readState(input.roleArn), this.#readInlinePolicies(roleName)]);
      // A role revoked before the version item existed: its statements are taken over from IAM.
      const current = state.version === 0 ? lanyardStatements(inline.ours) : state.statements;
      const merged = mergeStatement(current, deny, this.#clock.now() - PRUNE_AFTER_SECONDS * 1000);
      const foreign = foreignStatements(inline.ours);
      const text = render(foreign, merged.statements);
      const inlinePolicyChars = inline.otherChars + policyChars(text);
      const result = { roleName, changed: merged.changed, statements: merged.statements.length, pruned: merged.pruned, inlinePolicyChars };

      if (!merged.changed && merged.pruned === 0 && state.version > 0) {
        // Nothing new to commit; IAM is written only if it lags the item (a writer stopped between its two writes).
        if (sameStatements(lanyardStatements(inline.ours), state.statements)) return result;
        await this.#publish(roleName, input.roleArn, state, foreign);
        return result;
      }
      if (inlinePolicyChars > INLINE_POLICY_MAX_CHARS) throw stsRevocationCapacity(roleName, inlinePolicyChars, merged.statements.length);

      const next: State = { version: state.version + 1, statements: merged.statements };
      if (!(await this.#writeState(input.roleArn, state.version, next))) continue;
      await this.#publish(roleName, input.roleArn, next, foreign);
      return result;
    }
    throw failClosed(new Error(`the revocations of role ${roleName} kept changing under ${MAX_ATTEMPTS} attempts`));
  }

  /**
   * Writes the policy of `state`, then follows the version item until the policy written last
   * is its latest version (see the module comment).
   */
  async #publish(roleName: string, roleArn: string, state: State, foreign: readonly PolicyStatement[]): Promise<void> {
    let written = state;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        await this.#iam.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: REVOCATION_POLICY_NAME, PolicyDocument: render(foreign, written.statements) }));
      } catch (error) {
        throw failClosed(error);
      }
      const latest = await this.#readState(roleArn);
      if (latest.version <= written.version) return;
      written = latest;
    }
    throw failClosed(new Error(`the revocations of role ${roleName} kept changing while being written to IAM`));
  }

  async #readState(roleArn: string): Promise<State> {
    let item: Record<string, unknown> | undefined;
    try {
      item = (await this.#table.send(new GetCommand({ TableName: this.#tableName, Key: stateKey(roleArn), ConsistentRead: true }))).Item;
    } catch (error) {
      throw failClosed(error);
    }
    if (item === undefined) return { version: 0, statements: [] };
    const version = item['version'];
    const statements = typeof item['statements'] === 'string' ? (JSON.parse(item['statements']) as unknown) : undefined;
    if (typeof version !== 'number' || !Array.isArray(statements)) {
      throw failClosed(new Error(`the STS revocation item of ${roleArn} is malformed`));
    }
    return { version, statements: statements as PolicyStatement[] };
  }

  /** False when another writer moved the item on since `fromVersion` was read. */
  async #writeState(roleArn: string, fromVersion: number, next: State): Promise<boolean> {
    try {
      await this.#table.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: { ...stateKey(roleArn), version: next.version, statements: JSON.stringify(next.statements), updatedAt: new Date(this.#clock.now()).toISOString() },
          ConditionExpression: fromVersion === 0 ? 'attribute_not_exists(PK)' : 'version = :from',
          ...(fromVersion !== 0 && { ExpressionAttributeValues: { ':from': fromVersion } }),
        }),
      );
      return true;
    } catch (error) {
      if ((error as { name?: unknown } | undefined)?.name === 'ConditionalCheckFailedException') return false;
      throw failClosed(error);
    }
  }

  async #readInlinePolicies(roleName: string): Promise<InlinePolicies> {
    const names: string[] = [];
    let marker: string | undefined;
    try {
      do {
        const page = await this.#iam.send(new ListRolePoliciesCommand({ RoleName: roleName, ...(marker && { Marker: marker }) }));
        names.push(...(page.PolicyNames ?? []));
        marker = page.IsTruncated ? page.Marker : undefined;
      } while (marker);
    } catch (error) {
      throw failClosed(error);
    }
    let ours: PolicyDocument | undefined;
    let otherChars = 0;
    for (const name of names) {
      const text = await this.#readPolicy(roleName, name);
      if (text === undefined) continue;
      if (name === REVOCATION_POLICY_NAME) ours = parsePolicy(text, roleName);
      else otherChars += policyChars(text);
    }
    return { ours, otherChars };
  }

  async #readPolicy(roleName: string, policyName: string): Promise<string | undefined> {
    try {
      const output = await this.#iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
      // IAM returns policy documents URL-encoded (RFC 3986).
      return output.PolicyDocument ? decodeURIComponent(output.PolicyDocument) : undefined;
    } catch (error) {
      const name = (error as { name?: unknown } | undefined)?.name;
      // Listed, then deleted before it was read: it no longer counts.
      if (name === 'NoSuchEntityException' || name === 'NoSuchEntity') return undefined;
      throw failClosed(error);
    }
  }
}

function stateKey(roleArn: string): { PK: string; SK: string } {
  return { PK: `STSDENY#${roleArn}`, SK: 'STSDENY' };
}

function parsePolicy(text: string, roleName: string): PolicyDocument {
  try {
    const parsed = JSON.parse(text) as Partial<PolicyDocument>;
    const statements = Array.isArray(parsed.Statement) ? parsed.Statement : parsed.Statement ? [parsed.Statement] : [];
    return { Version: parsed.Version ?? '2012-10-17', Statement: statements };
  } catch (error) {
    throw failClosed(new Error(`the ${REVOCATION_POLICY_NAME} policy of role ${roleName} is not a JSON policy`, { cause: error }));
  }
}

/**
 * The deny for a target: its condition on the session tags, and a Sid naming the target (a
 * Sid is alphanumeric only, so the target is identified by a digest).
 *
 * @example
 * ```ts
 * denyStatement({ lane: 'support-triage/prod:tickets:write:acme' }, Date.parse('2026-11-22T12:00:00Z'));
 * // { Sid: 'LanyardLane…', Effect: 'Deny', Action: '*', Resource: '*', Condition: { StringEquals: { 'aws:PrincipalTag/lanyard:lane': … }, DateLessThanEquals: { 'aws:TokenIssueTime': '2026-11-22T12:00:00.000Z' } } }
 * ```
 */
export function denyStatement(target: RevocationTarget, cutoffMs: number): PolicyStatement {
  const match = sessionMatch(target);
  // A lane keeps the Sid it had when only lanes were denied, so existing statements are recognised.
  const sid = 'lane' in target ? LANE_SID_PREFIX + digest(toSessionTagValue(target.lane)) : TARGET_SID_PREFIX + digest(revocationTargetKey(target).key);
  return {
    Sid: sid,
    Effect: 'Deny',
    Action: '*',
    Resource: '*',
    Condition: { ...match, DateLessThanEquals: { 'aws:TokenIssueTime': new Date(cutoffMs).toISOString() } },
  };
}

/** The session-tag condition of the module comment's table. Lanyard ids contain neither `*` nor `?`, the StringLike wildcards. */
function sessionMatch(target: RevocationTarget): Condition {
  if ('lane' in target) {
    if (parseLaneId(target.lane) === undefined) throw invalidRequest('lane', `"${target.lane}" is not a lane id`);
    return { StringEquals: { [TAG('lane')]: toSessionTagValue(target.lane) } };
  }
  if ('credential' in target) return { StringEquals: { [TAG('credential')]: target.credential } };
  if ('tenant' in target) return { StringEquals: { [TAG('tenant')]: toSessionTagValue(target.tenant) } };
  if ('tool' in target) {
    const identities = target.identity === undefined ? ['*'] : identityPatterns(target.identity);
    const lanes = identities.flatMap((identity) => ACCESS_LEVELS.map((level) => `${identity}:${target.tool}:${level}:*`));
    return { StringLike: { [TAG('lane')]: lanes } };
  }
  if ('identity' in target) {
    const patterns = identityPatterns(target.identity);
    return patterns.length === 1 ? { StringEquals: { [TAG('identity')]: patterns[0]! } } : { StringLike: { [TAG('identity')]: patterns } };
  }
  throw invalidRequest('target', 'a signing-key revocation reaches no STS session');
}

/** An instance matches itself; a class identity matches itself and its instances (`#` is `@` in a tag). */
function identityPatterns(identity: string): string[] {
  const parts = parseIdentityId(identity);
  if (parts === undefined) throw invalidRequest('identity', `"${identity}" is not an identity id`);
  const tag = toSessionTagValue(identity);
  return parts.instance === undefined ? [tag, `${tag}@*`] : [tag];
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 24);
}

/**
 * Pure merge: adds the deny or moves its cut-off forward, and drops Lanyard statements whose
 * cut-off is older than `pruneBeforeMs` (the one being written is never dropped).
 */
export function mergeStatement(
  current: readonly PolicyStatement[],
  deny: PolicyStatement,
  pruneBeforeMs: number,
): { statements: PolicyStatement[]; changed: boolean; pruned: number } {
  let existing: PolicyStatement | undefined;
  let pruned = 0;
  const kept: PolicyStatement[] = [];
  for (const statement of current) {
    if (statement.Sid === deny.Sid) {
      existing = statement;
      continue;
    }
    const cutoff = statementCutoff(statement);
    if (cutoff !== undefined && cutoff < pruneBeforeMs) {
      pruned++;
      continue;
    }
    kept.push(statement);
  }
  const before = existing === undefined ? undefined : statementCutoff(existing);
  const changed = before === undefined || statementCutoff(deny)! > before;
  kept.push(changed ? deny : existing!);
  kept.sort((a, b) => (a.Sid ?? '').localeCompare(b.Sid ?? ''));
  return { statements: kept, changed, pruned };
}

function render(foreign: readonly PolicyStatement[], statements: readonly PolicyStatement[]): string {
  const document: PolicyDocument = { Version: '2012-10-17', Statement: [...foreign, ...statements] };
  return JSON.stringify(document);
}

function isLanyardStatement(statement: PolicyStatement): boolean {
  return typeof statement.Sid === 'string' && LANYARD_SID.test(statement.Sid) && statementCutoff(statement) !== undefined;
}

function lanyardStatements(document: PolicyDocument | undefined): PolicyStatement[] {
  return (document?.Statement ?? []).filter(isLanyardStatement);
}

/** Statements someone else put in the policy: kept as they are. */
function foreignStatements(document: PolicyDocument | undefined): PolicyStatement[] {
  return (document?.Statement ?? []).filter((statement) => !isLanyardStatement(statement));
}

function sameStatements(a: readonly PolicyStatement[], b: readonly PolicyStatement[]): boolean {
  const canonical = (list: readonly PolicyStatement[]) => JSON.stringify([...list].sort((x, y) => (x.Sid ?? '').localeCompare(y.Sid ?? '')));
  return canonical(a) === canonical(b);
}

function statementCutoff(statement: PolicyStatement): number | undefined {
  const value = statement.Condition?.['DateLessThanEquals']?.['aws:TokenIssueTime'];
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(ms) ? undefined : ms;
}
