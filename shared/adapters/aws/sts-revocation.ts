/**
 * Revoking STS sessions (DESIGN §3). An STS session cannot be deleted, so revoking a lane puts
 * a `Deny *` on the tool's role for sessions tagged with that lane and issued at or before the
 * cut-off (`aws:TokenIssueTime`). The statements live in one inline role policy,
 * `lanyard-revocations`, one statement per lane: a later cut-off for a lane replaces an earlier
 * one, an earlier one changes nothing (a later cut-off already denies more).
 *
 * Size: IAM caps the inline policies of a role at 10,240 characters in total (whitespace not
 * counted). A statement stops mattering 12 hours after its cut-off, the longest an STS session
 * can live, so those are pruned on every write; if the policy is still too big, the revocation
 * fails with a typed error rather than dropping a live deny.
 *
 * IAM has no conditional write: two revocations of lanes on the same role at the same moment
 * can lose one of them. Run revocations for one role one at a time (the revocation stream
 * publisher processes records in order).
 */
import { createHash } from 'node:crypto';
import { GetRolePolicyCommand, PutRolePolicyCommand, type IAMClient } from '@aws-sdk/client-iam';
import { failClosed, invalidRequest, LanyardError } from '../../errors.ts';
import { systemClock, type Clock } from '../../ports.ts';
import { STS_MAX_DURATION_SECONDS, toSessionTagValue } from './sts-sessions.ts';

export const REVOCATION_POLICY_NAME = 'lanyard-revocations';
/** IAM's limit for a role's inline policies (whitespace excluded). */
export const INLINE_POLICY_MAX_CHARS = 10_240;

const LANE_TAG_CONDITION_KEY = 'aws:PrincipalTag/lanyard:lane';
const SID_PREFIX = 'LanyardLane';
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;

interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

interface PolicyDocument {
  readonly Version: string;
  readonly Statement: PolicyStatement[];
}

export interface RevokeLaneInput {
  readonly roleArn: string;
  /** The Lanyard lane id; the deny matches its session-tag form (`toSessionTagValue`). */
  readonly lane: string;
  /** ISO 8601 instant: sessions of the lane issued at or before it are denied. */
  readonly cutoff: string;
}

export interface RevokeLaneResult {
  readonly roleName: string;
  /** False when the policy already held this lane with the same or a later cut-off. */
  readonly changed: boolean;
  /** Lane statements in the policy after the write. */
  readonly statements: number;
  /** Lane statements dropped because their cut-off is more than 12 h old. */
  readonly pruned: number;
}

export interface StsLaneRevokerOptions {
  /** Created once by the caller, at module scope. */
  readonly client: IAMClient;
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

/**
 * @example
 * ```ts
 * const revoker = new StsLaneRevoker({ client: new IAMClient({}) });
 * await revoker.revokeLane({ roleArn, lane: 'support-triage/prod:tickets:write:acme', cutoff: revocation.cutoff });
 * ```
 */
export class StsLaneRevoker {
  readonly #client: IAMClient;
  readonly #clock: Clock;

  constructor(options: StsLaneRevokerOptions) {
    if (!options?.client) throw new Error('StsLaneRevoker: an IAMClient is required');
    this.#client = options.client;
    this.#clock = options.clock ?? systemClock;
  }

  async revokeLane(input: RevokeLaneInput): Promise<RevokeLaneResult> {
    const roleName = roleNameFromArn(input.roleArn);
    if (typeof input.lane !== 'string' || input.lane === '') throw invalidRequest('lane', 'a lane id is required');
    const cutoffMs = Date.parse(input.cutoff);
    if (Number.isNaN(cutoffMs)) throw invalidRequest('cutoff', `"${input.cutoff}" is not an ISO 8601 instant`);

    const current = await this.#read(roleName);
    const { document, changed, pruned } = mergeRevocation(current, {
      laneTag: toSessionTagValue(input.lane),
      cutoffMs,
      pruneBeforeMs: this.#clock.now() - STS_MAX_DURATION_SECONDS * 1000,
    });
    const statements = document.Statement.filter(isLaneStatement).length;
    if (!changed && pruned === 0) return { roleName, changed, statements, pruned };

    const text = JSON.stringify(document);
    if (text.length > INLINE_POLICY_MAX_CHARS) {
      throw new LanyardError(
        'conflict',
        `the ${REVOCATION_POLICY_NAME} policy of role ${roleName} would be ${text.length} characters; IAM allows ${INLINE_POLICY_MAX_CHARS}`,
        { context: { field: 'lane', maxPolicyChars: INLINE_POLICY_MAX_CHARS, liveStatements: statements } },
      );
    }
    try {
      await this.#client.send(new PutRolePolicyCommand({ RoleName: roleName, PolicyName: REVOCATION_POLICY_NAME, PolicyDocument: text }));
    } catch (error) {
      throw failClosed(error);
    }
    return { roleName, changed, statements, pruned };
  }

  async #read(roleName: string): Promise<PolicyDocument | undefined> {
    let encoded: string | undefined;
    try {
      const output = await this.#client.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: REVOCATION_POLICY_NAME }));
      encoded = output.PolicyDocument;
    } catch (error) {
      const name = (error as { name?: unknown } | undefined)?.name;
      if (name === 'NoSuchEntityException' || name === 'NoSuchEntity') return undefined;
      throw failClosed(error);
    }
    if (!encoded) return undefined;
    try {
      // IAM returns policy documents URL-encoded (RFC 3986).
      const parsed = JSON.parse(decodeURIComponent(encoded)) as Partial<PolicyDocument>;
      const statements = Array.isArray(parsed.Statement) ? parsed.Statement : parsed.Statement ? [parsed.Statement] : [];
      return { Version: parsed.Version ?? '2012-10-17', Statement: statements };
    } catch (error) {
      throw failClosed(new Error(`the ${REVOCATION_POLICY_NAME} policy of role ${roleName} is not a JSON policy`, { cause: error }));
    }
  }
}

/**
 * Pure merge: adds or moves forward the lane's deny, drops lane statements whose cut-off is
 * older than `pruneBeforeMs`, and keeps any statement Lanyard did not write as it is.
 */
export function mergeRevocation(
  current: PolicyDocument | undefined,
  change: { readonly laneTag: string; readonly cutoffMs: number; readonly pruneBeforeMs: number },
): { document: PolicyDocument; changed: boolean; pruned: number } {
  const sid = sidFor(change.laneTag);
  let existingCutoff: number | undefined;
  let pruned = 0;
  const kept: PolicyStatement[] = [];
  for (const statement of current?.Statement ?? []) {
    if (!isLaneStatement(statement)) {
      kept.push(statement);
      continue;
    }
    const cutoff = statementCutoff(statement);
    if (statementLane(statement) === change.laneTag) {
      existingCutoff = cutoff;
      continue;
    }
    if (cutoff !== undefined && cutoff < change.pruneBeforeMs) {
      pruned++;
      continue;
    }
    kept.push(statement);
  }
  const cutoffMs = Math.max(change.cutoffMs, existingCutoff ?? Number.NEGATIVE_INFINITY);
  const changed = existingCutoff === undefined || change.cutoffMs > existingCutoff;
  kept.push(laneStatement(sid, change.laneTag, cutoffMs));
  kept.sort((a, b) => (a.Sid ?? '').localeCompare(b.Sid ?? ''));
  return { document: { Version: '2012-10-17', Statement: kept }, changed, pruned };
}

function laneStatement(sid: string, laneTag: string, cutoffMs: number): PolicyStatement {
  return {
    Sid: sid,
    Effect: 'Deny',
    Action: '*',
    Resource: '*',
    Condition: {
      StringEquals: { [LANE_TAG_CONDITION_KEY]: laneTag },
      DateLessThanEquals: { 'aws:TokenIssueTime': new Date(cutoffMs).toISOString() },
    },
  };
}

/** A Sid is alphanumeric only, so the lane is identified by a digest of its tag value. */
function sidFor(laneTag: string): string {
  return SID_PREFIX + createHash('sha256').update(laneTag).digest('hex').slice(0, 24);
}

function isLaneStatement(statement: PolicyStatement): boolean {
  return typeof statement.Sid === 'string' && statement.Sid.startsWith(SID_PREFIX) && statementLane(statement) !== undefined;
}

function statementLane(statement: PolicyStatement): string | undefined {
  const value = statement.Condition?.StringEquals?.[LANE_TAG_CONDITION_KEY];
  return typeof value === 'string' ? value : undefined;
}

function statementCutoff(statement: PolicyStatement): number | undefined {
  const value = statement.Condition?.DateLessThanEquals?.['aws:TokenIssueTime'];
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isNaN(ms) ? undefined : ms;
}
