/**
 * Signing-key rotation (docs/domain.md#credentials), invoked by EventBridge Scheduler every `rotationPeriod`
 * with `{ "command": "rotate", "alias": … }`. Each invocation runs ONE step of
 * `rotateSigningKey` (stage a successor, or activate a staged key that has been published
 * long enough and retire the previous one, and schedule the deletion of retired keys whose
 * last token has expired, or withdraw the key CloudFormation owns), then records the keys to
 * publish in the signing-key registry (the one item the signers and the JWKS read), then, per
 * key that changed state, writes one `key_rotated` decision record (docs/domain.md#audit) and publishes
 * one `Signing Key Rotated` event. A failed registry write fails the run before any record. The records are written
 * first: an event never goes out without its record. A failed record write fails the run
 * (Errors alarm) before any event is published; the key changes of that step stay made, and a
 * later run does not report them again. The timing this gives is in docs/deploy.md
 * ("Signing-key rotation").
 *
 * Every key rotation creates carries `LANYARD_SIGNING_KEY_TAG=<alias>` from its CreateKey
 * request on: the function's IAM policy allows CreateKey only with that request tag, and the
 * KMS permissions of every other function follow that tag.
 *
 * A detail or record names keys (ARN, RFC 7638 `kid`) and states, never key material.
 */
import { randomUUID } from 'node:crypto';
import { CreateKeyCommand, DescribeKeyCommand, GetPublicKeyCommand, type KMSClient, type Tag } from '@aws-sdk/client-kms';
import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { calculateJwkThumbprint } from 'jose';
import * as z from 'zod';
import { invalidRequest } from '../shared/domain/errors.ts';
import type { DecisionRecord } from '../shared/domain/model.ts';
import { DETAIL_TYPES } from '../shared/domain/events.ts';
import { describeError, type Log } from '../shared/ports/log.ts';
import { systemClock, type Clock, type EventPublisher, type LanyardEvent, type Store } from '../shared/ports/index.ts';
import { spkiToJwk } from '../shared/adapters/aws/der.ts';
import { DynamoStore, type DynamoStoreOptions } from '../shared/adapters/dynamodb/dynamo-store.ts';
import { EventBridgePublisher } from '../shared/adapters/aws/eventbridge-publisher.ts';
import { rotateSigningKey, type RotationPolicy, type RotationResult } from '../shared/adapters/aws/key-rotation.ts';
import { SigningKeyRegistry } from '../shared/adapters/aws/signing-key-registry.ts';
import { dynamoClient, eventBridgeClient, kmsClient, lambdaLog } from '../shared/bootstrap/aws/clients.ts';

export const RotateCommandSchema = z.object({ command: z.literal('rotate'), alias: z.string().min(1) }).strict();

export type KeyTransition = 'staged' | 'activated' | 'retired' | 'scheduled_for_deletion' | 'withdrawn';

/** The actor named on rotation events and records. */
export const ROTATION_ACTOR = 'rotation-schedule';

export interface RotateSigningKeyOptions {
  /** Created once, at module scope. Wrapped here so every CreateKey carries the family tag. */
  readonly kms: KMSClient;
  readonly publisher: EventPublisher;
  /** Where the `key_rotated` decision records go (the Lanyard table on AWS). */
  readonly store: Pick<Store, 'putDecisions'>;
  /** Where the published keys go after every run (the Lanyard table on AWS). */
  readonly registry: Pick<SigningKeyRegistry, 'read' | 'write'>;
  readonly log: Log;
  /** The alias this function rotates (`LANYARD_SIGNING_KEY`); an event naming another is refused. */
  readonly alias: string;
  /** `LANYARD_SIGNING_KEY_TAG`: tag key put on every created key, value = the alias. */
  readonly familyTag: string;
  /** Includes `retainedKeyIds`: the key CloudFormation created (`LANYARD_RETAINED_KEY_IDS`), never deleted. */
  readonly policy: RotationPolicy;
  /** @default systemClock */
  readonly clock?: Clock;
}

export interface RotateSigningKeyResponse {
  readonly alias: string;
  readonly transitions: readonly { readonly transition: KeyTransition; readonly keyArn: string; readonly kid?: string }[];
  readonly publishedKeyArns: readonly string[];
}

/**
 * @example
 * ```ts
 * const rotate = createRotateSigningKeyHandler({ kms, publisher, store, log, alias: 'alias/lanyard-signing',
 *   familyTag: 'lanyard:signing-key', policy: { stagedMinAgeSeconds: 900, maxTokenTtlSeconds: 43200 } });
 * await rotate({ command: 'rotate', alias: 'alias/lanyard-signing' });
 * ```
 */
export function createRotateSigningKeyHandler(options: RotateSigningKeyOptions): (event: unknown, context?: unknown) => Promise<RotateSigningKeyResponse> {
  const { publisher, store, registry, log, alias, familyTag, policy } = options;
  if (familyTag.trim() === '') throw new Error('rotate-signing-key: the signing-key family tag must not be empty');
  const clock = options.clock ?? systemClock;
  const kms = withFamilyTag(options.kms, { TagKey: familyTag, TagValue: alias });

  return async (event, context) => {
    const parsed = RotateCommandSchema.safeParse(event);
    if (!parsed.success) throw invalidRequest('event', `expected { "command": "rotate", "alias": "${alias}" }: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    if (parsed.data.alias !== alias) throw invalidRequest('alias', `this function rotates ${alias}, not ${parsed.data.alias}`);
    // A run always has a request id: Lambda's, or one of its own when invoked without a context.
    const requestId = (context as { awsRequestId?: string } | undefined)?.awsRequestId ?? randomUUID();
    const now = clock.now();

    const at = new Date(now).toISOString();
    const published = await registry.read(alias);
    const publishedSince = new Map(published.map((key) => [key.arn, Date.parse(key.publishedAt)]));
    const result = await rotateSigningKey({ kms, alias, now, ...policy, publishedSince });
    try {
      // Every run writes the whole set: a run that failed here is repaired by the next one.
      await registry.write(
        alias,
        result.publishedKeyArns.map((arn) => ({ arn, publishedAt: published.find((key) => key.arn === arn)?.publishedAt ?? at })),
        at,
      );
    } catch (error) {
      log.error('signing-key registry not written; no record or event', { alias, published: result.publishedKeyArns, error: describeError(error) });
      throw error;
    }
    const transitions = await describeTransitions(kms, result);
    const events: LanyardEvent[] = transitions.map((t) => ({
      // Deterministic: a retried publication of the same step is recognisably the same event.
      id: `key-${t.transition}-${t.keyArn.slice(t.keyArn.lastIndexOf('/') + 1)}`,
      source: 'lanyard',
      detailType: DETAIL_TYPES.rotated,
      time: at,
      detail: {
        alias,
        transition: t.transition,
        keyArn: t.keyArn,
        ...(t.kid !== undefined && { kid: t.kid }),
        at,
        actor: ROTATION_ACTOR,
        requestId,
      },
    }));
    log.info('signing-key rotation step', { alias, transitions: transitions.map((t) => `${t.transition} ${t.keyArn}`), published: result.publishedKeyArns.length });
    if (transitions.length > 0) {
      const records = transitions.map((t) => keyRotatedRecord(alias, t, requestId, at));
      try {
        await store.putDecisions(records);
      } catch (error) {
        // No event without its record: nothing is published, and the run fails loudly (Errors alarm).
        log.error('signing-key rotation records not written; no event published', { alias, recordIds: records.map((r) => r.id), error: describeError(error) });
        throw error;
      }
      try {
        await publisher.publish(events);
      } catch (error) {
        // The keys have moved; the run fails loudly (Errors alarm) so on-call sees the events are missing.
        log.error('signing-key rotation events not published', { alias, eventIds: events.map((e) => e.id), error: describeError(error) });
        throw error;
      }
    }
    return { alias, transitions, publishedKeyArns: result.publishedKeyArns };
  };
}

/**
 * The audit record of one key's transition (docs/domain.md#audit). One run can move several keys
 * (activated + retired, several scheduled for deletion), so the id names the transition and
 * the key besides the request: `key_rotated_<requestId>_<transition>_<key id>`. It carries the
 * `kid` (absent for a key scheduled for deletion, whose public key is no longer readable) and
 * the key ARN in the message, never key material.
 */
export function keyRotatedRecord(alias: string, t: RotateSigningKeyResponse['transitions'][number], requestId: string, at: string): DecisionRecord {
  const keyId = t.keyArn.slice(t.keyArn.lastIndexOf('/') + 1);
  return {
    id: `key_rotated_${requestId}_${t.transition}_${keyId}`,
    requestId,
    at,
    decision: 'key_rotated',
    reason: t.transition,
    message: `signing key ${t.keyArn} of ${alias}: ${t.transition.replaceAll('_', ' ')}`,
    actor: ROTATION_ACTOR,
    ...(t.kid !== undefined && { kid: t.kid }),
    actionsRequested: [],
    actionsGranted: [],
  };
}

/**
 * One entry per key that changed state, by ARN, with its `kid` while its public key can still
 * be read. `RotationResult` can name a key adopted from outside rotation (the key `cdk deploy`
 * made) by its key id: KMS answers with the ARN, which is what the event carries.
 */
async function describeTransitions(kms: KMSClient, result: RotationResult): Promise<RotateSigningKeyResponse['transitions']> {
  const out: { transition: KeyTransition; keyArn: string; kid?: string }[] = [];
  for (const transition of ['staged', 'activated', 'retired'] as const) {
    const ref = result[transition];
    if (ref !== undefined) out.push({ transition, ...(await publicKeyOf(kms, ref)) });
  }
  // A withdrawn key is kept (CloudFormation owns it): its public key can still be read.
  for (const ref of result.withdrawn ?? []) out.push({ transition: 'withdrawn', ...(await publicKeyOf(kms, ref)) });
  // A key pending deletion has no readable public key any more: its event names the ARN only.
  for (const ref of result.scheduledForDeletion ?? []) out.push({ transition: 'scheduled_for_deletion', keyArn: await arnOf(kms, ref) });
  return out;
}

/** The key's ARN and the `kid` the signer and the JWKS use for it: the RFC 7638 thumbprint of its public key. */
async function publicKeyOf(kms: KMSClient, ref: string): Promise<{ keyArn: string; kid: string }> {
  const output = await kms.send(new GetPublicKeyCommand({ KeyId: ref }));
  if (!output.PublicKey || !output.KeyId) throw new Error(`KMS GetPublicKey for ${ref} returned no key`);
  return { keyArn: output.KeyId, kid: await calculateJwkThumbprint(spkiToJwk(output.PublicKey), 'sha256') };
}

async function arnOf(kms: KMSClient, ref: string): Promise<string> {
  if (ref.startsWith('arn:')) return ref;
  return (await kms.send(new DescribeKeyCommand({ KeyId: ref }))).KeyMetadata?.Arn ?? ref;
}

/**
 * The client as rotation sees it: every CreateKey carries the family tag. IAM allows CreateKey
 * only with it (aws:RequestTag), so a key is never created outside the family the other
 * functions' permissions follow. A Proxy rather than SDK middleware keeps `send` the one seam.
 */
export function withFamilyTag(kms: KMSClient, tag: Required<Pick<Tag, 'TagKey' | 'TagValue'>>): KMSClient {
  const send = (command: unknown, ...rest: unknown[]): unknown => {
    if (command instanceof CreateKeyCommand) {
      const tags = (command.input.Tags ?? []).filter((t) => t.TagKey !== tag.TagKey);
      command = new CreateKeyCommand({ ...command.input, Tags: [...tags, tag] });
    }
    return (kms.send as (...args: unknown[]) => unknown).call(kms, command, ...rest);
  };
  return new Proxy(kms, {
    get(target, property, receiver) {
      return property === 'send' ? send : (Reflect.get(target, property, receiver) as unknown);
    },
  });
}

// The AWS wiring: built on the first invocation, once per container, not on every call.
let built: ((event: unknown, context?: unknown) => Promise<RotateSigningKeyResponse>) | undefined;

export function handler(event: unknown, context?: unknown): Promise<RotateSigningKeyResponse> {
  built ??= rotationFromEnv(process.env);
  return built(event, context);
}

/** Reads the variables the CDK stack sets on this function; a missing or bad one fails with its name. */
export function rotationFromEnv(
  env: NodeJS.ProcessEnv,
  clients: { kms?: KMSClient; eventBridge?: EventBridgeClient; dynamo?: DynamoStoreOptions['client'] } = {},
): (event: unknown, context?: unknown) => Promise<RotateSigningKeyResponse> {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`environment variable ${name} is required`);
    return value;
  };
  const seconds = (name: string): number => {
    const value = Number(required(name));
    if (!Number.isInteger(value) || value < 0) throw new Error(`environment variable ${name} must be a whole number of seconds, got ${env[name]}`);
    return value;
  };
  // The clients and log of the AWS composition root (shared/bootstrap/aws/clients.ts); tests pass their fakes.
  const log = lambdaLog();
  const dynamo = clients.dynamo ?? dynamoClient(env);
  const retainedKeyIds = (env.LANYARD_RETAINED_KEY_IDS ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  return createRotateSigningKeyHandler({
    kms: clients.kms ?? kmsClient(env, log),
    publisher: new EventBridgePublisher({ client: clients.eventBridge ?? eventBridgeClient(env), busName: required('LANYARD_EVENT_BUS') }),
    store: new DynamoStore({ client: dynamo, tableName: required('LANYARD_TABLE') }),
    registry: new SigningKeyRegistry({ client: dynamo, tableName: required('LANYARD_TABLE') }),
    log,
    alias: required('LANYARD_SIGNING_KEY'),
    familyTag: required('LANYARD_SIGNING_KEY_TAG'),
    policy: { stagedMinAgeSeconds: seconds('LANYARD_KEY_COOL_DOWN_SECONDS'), maxTokenTtlSeconds: seconds('LANYARD_MAX_CREDENTIAL_TTL_SECONDS'), retainedKeyIds },
  });
}
