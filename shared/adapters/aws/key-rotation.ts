/**
 * Signing-key rotation on KMS (docs/domain.md#credentials): staged → active → retired → deleted.
 *
 * KMS does not rotate asymmetric keys, so rotation creates a key and moves the alias the
 * signer uses. The rules, in the order one run applies them:
 * 1. The alias is the truth about which key is active. Tags that disagree with it (a run that
 *    stopped half-way) are repaired: the alias target is tagged active, any other key tagged
 *    active is retired now (later than it really was, which only keeps it published longer).
 * 2. A retired key is scheduled for deletion (7-day window) once the last token it can have
 *    signed has expired: `retiredAt + aliasCacheTtl + maxTokenTtl` (a signer may keep signing
 *    with it until its alias cache expires). A key in `retainedKeyIds` (the one CloudFormation
 *    created and owns) is never scheduled for deletion: it is withdrawn instead (tagged
 *    `withdrawn`, no longer published), so the stack's key stays usable for later updates.
 * 3. A staged key that has been published longer than `stagedMinAgeSeconds` (set it above the
 *    verifiers' JWKS cache cool-down) becomes active (published since `publishedSince`, when the
 *    caller records publication, else since its `stagedAt` tag): the alias moves to it, then the old key
 *    is tagged retired. A key is never signed with before verifiers can have fetched it.
 * 4. When no key is staged (and none was activated in this run), a new one is staged, once the
 *    active key is older than `activeMaxAgeSeconds` (or at once when that is not given).
 * With no alias at all (first deployment) the first key is created active: no verifier can
 * hold a token yet, so there is nothing to wait for.
 *
 * State lives in KMS tags (`lanyard:state`, `lanyard:stagedAt`, `lanyard:activatedAt`,
 * `lanyard:retiredAt`, `lanyard:withdrawnAt`, and `lanyard:alias` naming the alias the key
 * belongs to). Which keys are published is copied, after every run, into the signing-key
 * registry (signing-key-registry.ts) by the rotation function: the signers read that, not KMS. `planRotation` is the pure decision; `rotateSigningKey` reads KMS, plans and
 * carries the plan out, and says what happened so the caller can emit `Signing Key Rotated`.
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UpdateAliasCommand,
  type KMSClient,
  type Tag,
} from '@aws-sdk/client-kms';
import { failClosed } from '../../domain/errors.ts';
import { DEFAULT_PUBLIC_KEY_CACHE_TTL_MS } from './kms-signer.ts';

export type SigningKeyState = 'staged' | 'active' | 'retired';
/** A retained key past its last token: kept (CloudFormation owns it), no longer published, never read as a record again. */
export const WITHDRAWN_STATE = 'withdrawn';

export const TAG_ALIAS = 'lanyard:alias';
export const TAG_STATE = 'lanyard:state';
export const TAG_STAGED_AT = 'lanyard:stagedAt';
export const TAG_ACTIVATED_AT = 'lanyard:activatedAt';
export const TAG_RETIRED_AT = 'lanyard:retiredAt';
export const TAG_WITHDRAWN_AT = 'lanyard:withdrawnAt';
export const DELETION_WINDOW_DAYS = 7;

const AT_TAG: Record<SigningKeyState, string> = { staged: TAG_STAGED_AT, active: TAG_ACTIVATED_AT, retired: TAG_RETIRED_AT };
const STATES: readonly string[] = ['staged', 'active', 'retired'];

export interface SigningKeyRecord {
  /** KMS key id (UUID). */
  readonly keyId: string;
  readonly keyArn: string;
  readonly state: SigningKeyState;
  /** ISO instants from the tags; absent when the key never was in that state. */
  readonly stagedAt?: string;
  readonly activatedAt?: string;
  readonly retiredAt?: string;
}

export type RotationStep =
  /** Create a key; `active` only when there is no alias yet (first deployment). */
  | { readonly kind: 'create'; readonly state: 'staged' | 'active' }
  | { readonly kind: 'move_alias'; readonly keyId: string }
  | { readonly kind: 'tag'; readonly keyId: string; readonly state: SigningKeyState }
  | { readonly kind: 'schedule_deletion'; readonly keyId: string }
  /** A retained key whose last token has expired: tagged withdrawn (unpublished), never deleted. */
  | { readonly kind: 'withdraw'; readonly keyId: string };

export interface RotationPolicy {
  /** How long a staged key is published before it signs; above the verifiers' JWKS cool-down. */
  readonly stagedMinAgeSeconds: number;
  /** The longest TTL a token can be issued with. */
  readonly maxTokenTtlSeconds: number;
  /** How long a signer may keep using the previous alias target. @default DEFAULT_PUBLIC_KEY_CACHE_TTL_MS / 1000 */
  readonly aliasCacheTtlSeconds?: number;
  /** Stage a successor only once the active key is this old. @default undefined: stage whenever none is staged */
  readonly activeMaxAgeSeconds?: number;
  /**
   * Key ids never scheduled for deletion (the key CloudFormation created: deleting it would
   * leave the stack drifted and its later updates failing); withdrawn instead. @default []
   */
  readonly retainedKeyIds?: readonly string[];
}

/**
 * The pure decision: the steps that move the keys of one alias forward at `now` (ms).
 *
 * @example
 * ```ts
 * planRotation({ records, aliasTargetKeyId, now: Date.now(), stagedMinAgeSeconds: 3600, maxTokenTtlSeconds: 900 });
 * // → [{ kind: 'move_alias', keyId: 'k2' }, { kind: 'tag', keyId: 'k2', state: 'active' }, { kind: 'tag', keyId: 'k1', state: 'retired' }]
 * ```
 */
export function planRotation(
  input: RotationPolicy & { readonly records: readonly SigningKeyRecord[]; readonly aliasTargetKeyId?: string; readonly now: number },
): RotationStep[] {
  validatePolicy(input);
  const { records, aliasTargetKeyId: target, now } = input;
  const steps: RotationStep[] = [];
  if (target === undefined) return [{ kind: 'create', state: 'active' }];

  // 1. Repair tags against the alias.
  const retiredAt = new Map<string, number>();
  let activeSince: number | undefined;
  for (const record of records) {
    if (record.keyId === target) {
      if (record.state !== 'active') steps.push({ kind: 'tag', keyId: record.keyId, state: 'active' });
      activeSince = record.state === 'active' ? instant(record.activatedAt, now) : now;
    } else if (record.state === 'active') {
      steps.push({ kind: 'tag', keyId: record.keyId, state: 'retired' });
      retiredAt.set(record.keyId, now);
    } else if (record.state === 'retired') {
      retiredAt.set(record.keyId, instant(record.retiredAt, now));
    }
  }

  // 2. Retired keys whose last token has expired.
  const keepMs = ((input.aliasCacheTtlSeconds ?? DEFAULT_PUBLIC_KEY_CACHE_TTL_MS / 1000) + input.maxTokenTtlSeconds) * 1000;
  const retained = new Set(input.retainedKeyIds ?? []);
  for (const [keyId, at] of retiredAt) {
    if (at + keepMs <= now) steps.push({ kind: retained.has(keyId) ? 'withdraw' : 'schedule_deletion', keyId });
  }

  // 3. The oldest staged key that has been published long enough.
  const staged = records
    .filter((record) => record.state === 'staged' && record.keyId !== target)
    .sort((a, b) => instant(a.stagedAt, now) - instant(b.stagedAt, now));
  const ripe = staged.find((record) => instant(record.stagedAt, now) + input.stagedMinAgeSeconds * 1000 <= now);
  if (ripe) {
    steps.push({ kind: 'move_alias', keyId: ripe.keyId }, { kind: 'tag', keyId: ripe.keyId, state: 'active' });
    // The alias target has just become the previous key, whatever its tags said.
    steps.push({ kind: 'tag', keyId: target, state: 'retired' });
    return steps;
  }

  // 4. Start the next rotation.
  const due = input.activeMaxAgeSeconds === undefined || (activeSince ?? now) + input.activeMaxAgeSeconds * 1000 <= now;
  if (staged.length === 0 && due) steps.push({ kind: 'create', state: 'staged' });
  return steps;
}

export interface RotateSigningKeyInput extends RotationPolicy {
  /** Created once by the caller, at module scope. */
  readonly kms: KMSClient;
  /** The alias the signer uses, e.g. `alias/lanyard-signing`. */
  readonly alias: string;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** The keys of this alias, when the caller already read them; read from KMS tags otherwise. */
  readonly keyRecords?: readonly SigningKeyRecord[];
  /**
   * When each key was first published (key ARN → ms), from the signing-key registry. Given, a
   * staged key ripens from its publication, and one not yet published (its run could not record
   * it) from now: it is never activated before verifiers could have fetched it.
   */
  readonly publishedSince?: ReadonlyMap<string, number>;
}

/** What one run did, by key ARN; emit one `Signing Key Rotated` event per field present. */
export interface RotationResult {
  readonly staged?: string;
  readonly activated?: string;
  readonly retired?: string;
  readonly scheduledForDeletion?: string[];
  /** Retained keys (CloudFormation's) no longer published: never deleted. */
  readonly withdrawn?: string[];
  /** Every key that must stay in the JWKS after this run (staged, active, retired). */
  readonly publishedKeyArns: string[];
}

/**
 * Reads the keys of `alias` from KMS, plans and applies one step of rotation.
 *
 * @example
 * ```ts
 * const result = await rotateSigningKey({ kms, alias: 'alias/lanyard-signing', now: Date.now(),
 *   stagedMinAgeSeconds: 3600, maxTokenTtlSeconds: 3600, activeMaxAgeSeconds: 30 * 86400 });
 * ```
 */
export async function rotateSigningKey(input: RotateSigningKeyInput): Promise<RotationResult> {
  validateAlias(input.alias);
  validatePolicy(input);
  const { kms, alias, now } = input;
  const at = new Date(now).toISOString();
  try {
    const aliasTargetKeyId = await describeAliasTarget(kms, alias);
    const records = [...(input.keyRecords ?? (await loadSigningKeyRecords({ kms, alias })))];
    const steps = planRotation({ ...input, records: ripeningFromPublication(records, input.publishedSince, now), aliasTargetKeyId });
    const byId = new Map(records.map((record) => [record.keyId, record]));
    const arnOf = (keyId: string) => byId.get(keyId)?.keyArn ?? keyId;
    const result: { -readonly [K in keyof RotationResult]: RotationResult[K] } = { publishedKeyArns: [] };
    const deleted = new Set<string>();

    for (const step of steps) {
      switch (step.kind) {
        case 'create': {
          const created = await createKey(kms, alias, step.state, at);
          byId.set(created.keyId, created);
          if (step.state === 'active') {
            await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: created.keyId }));
            result.activated = created.keyArn;
          } else {
            result.staged = created.keyArn;
          }
          break;
        }
        case 'move_alias':
          await kms.send(new UpdateAliasCommand({ AliasName: alias, TargetKeyId: step.keyId }));
          break;
        case 'tag': {
          // The alias tag comes along, so a key created outside Lanyard (the first one, by CDK) is adopted.
          await kms.send(new TagResourceCommand({ KeyId: step.keyId, Tags: [{ TagKey: TAG_ALIAS, TagValue: alias }, ...stateTags(step.state, at)] }));
          // An adopted key had no record: it joins the published set with the ARN KMS gives it.
          const record = byId.get(step.keyId) ?? { keyId: step.keyId, keyArn: await keyArnOf(kms, step.keyId), state: step.state };
          byId.set(step.keyId, { ...record, state: step.state, [stateAtField(step.state)]: at });
          if (step.state === 'active') result.activated = arnOf(step.keyId);
          if (step.state === 'retired') result.retired = arnOf(step.keyId);
          break;
        }
        case 'schedule_deletion':
          await kms.send(new ScheduleKeyDeletionCommand({ KeyId: step.keyId, PendingWindowInDays: DELETION_WINDOW_DAYS }));
          deleted.add(step.keyId);
          (result.scheduledForDeletion ??= []).push(arnOf(step.keyId));
          break;
        case 'withdraw':
          await kms.send(
            new TagResourceCommand({ KeyId: step.keyId, Tags: [{ TagKey: TAG_STATE, TagValue: WITHDRAWN_STATE }, { TagKey: TAG_WITHDRAWN_AT, TagValue: at }] }),
          );
          deleted.add(step.keyId);
          (result.withdrawn ??= []).push(arnOf(step.keyId));
          break;
      }
    }
    result.publishedKeyArns = [...byId.values()].filter((record) => !deleted.has(record.keyId)).map((record) => record.keyArn);
    return result;
  } catch (error) {
    throw failClosed(error);
  }
}

/**
 * The keys tagged for `alias`, skipping keys already pending deletion. Lists every key of the
 * account and region (ListKeys has no tag filter), so it belongs in the rotation job only; the
 * signers read the registry the rotation function writes. A key whose tags this role may not
 * read (its key policy denies it) is skipped: it is not one of the family, whose keys all have
 * the default key policy that lets the account's IAM policies decide.
 */
export async function loadSigningKeyRecords({ kms, alias }: { readonly kms: KMSClient; readonly alias: string }): Promise<SigningKeyRecord[]> {
  const records: SigningKeyRecord[] = [];
  let marker: string | undefined;
  do {
    const page = await kms.send(new ListKeysCommand({ Marker: marker }));
    for (const key of page.Keys ?? []) {
      if (!key.KeyId || !key.KeyArn) continue;
      const tags = await listTags(kms, key.KeyId);
      if (tags === undefined) continue;
      const state = tags.get(TAG_STATE);
      if (tags.get(TAG_ALIAS) !== alias || state === undefined || !STATES.includes(state)) continue;
      const metadata = (await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata;
      if (metadata?.KeyState === 'PendingDeletion' || metadata?.KeyState === 'PendingReplicaDeletion') continue;
      records.push({
        keyId: key.KeyId,
        keyArn: key.KeyArn,
        state: state as SigningKeyState,
        ...optional('stagedAt', tags.get(TAG_STAGED_AT)),
        ...optional('activatedAt', tags.get(TAG_ACTIVATED_AT)),
        ...optional('retiredAt', tags.get(TAG_RETIRED_AT)),
      });
    }
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);
  return records;
}

/**
 * The key ARNs a `KmsSigner` must publish for `alias`, from KMS tags: staged, active and retired
 * keys. Lists every key of the account: for tests and one-off tools; the AWS runtime reads the
 * signing-key registry instead.
 *
 * @example
 * ```ts
 * new KmsSigner({ client: kms, activeKeyId: alias, publishedKeyIds: () => publishedSigningKeyArns({ kms, alias }) });
 * ```
 */
export async function publishedSigningKeyArns(options: { readonly kms: KMSClient; readonly alias: string }): Promise<string[]> {
  return (await loadSigningKeyRecords(options)).map((record) => record.keyArn);
}

async function describeAliasTarget(kms: KMSClient, alias: string): Promise<string | undefined> {
  try {
    return (await kms.send(new DescribeKeyCommand({ KeyId: alias }))).KeyMetadata?.KeyId;
  } catch (error) {
    if ((error as { name?: unknown } | undefined)?.name === 'NotFoundException') return undefined;
    throw error;
  }
}

async function createKey(kms: KMSClient, alias: string, state: 'staged' | 'active', at: string): Promise<SigningKeyRecord> {
  // A first key is active at once; it still records when it was made, as every key does.
  const tags: Tag[] = [
    { TagKey: TAG_ALIAS, TagValue: alias },
    ...stateTags(state, at),
    ...(state === 'active' ? [{ TagKey: TAG_STAGED_AT, TagValue: at }] : []),
  ];
  const output = await kms.send(
    new CreateKeyCommand({
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
      Description: `Lanyard ES256 signing key for ${alias}`,
      Tags: tags,
    }),
  );
  const keyId = output.KeyMetadata?.KeyId;
  const keyArn = output.KeyMetadata?.Arn;
  if (!keyId || !keyArn) throw new Error('KMS CreateKey returned no key id');
  return { keyId, keyArn, state, stagedAt: at, ...(state === 'active' && { activatedAt: at }) };
}

/** The key's tags, or undefined when its key policy does not let this role read them (a foreign key). */
async function listTags(kms: KMSClient, keyId: string): Promise<Map<string, string> | undefined> {
  const tags = new Map<string, string>();
  let marker: string | undefined;
  do {
    let page;
    try {
      page = await kms.send(new ListResourceTagsCommand({ KeyId: keyId, Marker: marker }));
    } catch (error) {
      if ((error as { name?: unknown } | undefined)?.name === 'AccessDeniedException') return undefined;
      throw error;
    }
    for (const tag of page.Tags ?? []) if (tag.TagKey && tag.TagValue !== undefined) tags.set(tag.TagKey, tag.TagValue);
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);
  return tags;
}

/**
 * The records as the plan should see them: with a registry, a staged key counts as staged from
 * when it was first published (the later of its tag and its publication; now when unpublished).
 */
function ripeningFromPublication(records: readonly SigningKeyRecord[], publishedSince: ReadonlyMap<string, number> | undefined, now: number): SigningKeyRecord[] {
  if (publishedSince === undefined) return [...records];
  return records.map((record) => {
    if (record.state !== 'staged') return record;
    const published = publishedSince.get(record.keyArn) ?? now;
    return { ...record, stagedAt: new Date(Math.max(instant(record.stagedAt, now), published)).toISOString() };
  });
}

async function keyArnOf(kms: KMSClient, keyId: string): Promise<string> {
  const arn = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.Arn;
  if (!arn) throw new Error(`KMS DescribeKey for ${keyId} returned no ARN`);
  return arn;
}

function stateTags(state: SigningKeyState, at: string): Tag[] {
  return [
    { TagKey: TAG_STATE, TagValue: state },
    { TagKey: AT_TAG[state], TagValue: at },
  ];
}

function stateAtField(state: SigningKeyState): 'stagedAt' | 'activatedAt' | 'retiredAt' {
  return state === 'staged' ? 'stagedAt' : state === 'active' ? 'activatedAt' : 'retiredAt';
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

/** An instant from a tag; a missing or broken tag reads as `fallback` (now), the safe side for every rule. */
function instant(value: string | undefined, fallback: number): number {
  const ms = value === undefined ? Number.NaN : Date.parse(value);
  return Number.isNaN(ms) ? fallback : ms;
}

function validateAlias(alias: string): void {
  if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(alias) || alias.startsWith('alias/aws/')) {
    throw new Error(`key rotation: "${alias}" is not a customer alias name (alias/…)`);
  }
}

function validatePolicy(policy: RotationPolicy): void {
  for (const [name, value] of Object.entries({
    stagedMinAgeSeconds: policy.stagedMinAgeSeconds,
    maxTokenTtlSeconds: policy.maxTokenTtlSeconds,
    aliasCacheTtlSeconds: policy.aliasCacheTtlSeconds ?? 0,
    activeMaxAgeSeconds: policy.activeMaxAgeSeconds ?? 0,
  })) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`key rotation: ${name} must be a number of seconds ≥ 0, got ${value}`);
  }
}
