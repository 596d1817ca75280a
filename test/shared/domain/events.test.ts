/**
 * Events from committed state (docs/events.md) on the embedded default: every committed
 * revocation has exactly one event, in feed order, in events.log and on the SSE stream; a
 * revocation whose write failed has none; a restart resumes the tail without repeating it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../../shared/bootstrap/local/server.ts';
import { LocalChangeFeed } from '../../../shared/adapters/local/change-feed.ts';
import { LocalEventBus } from '../../../shared/adapters/local/event-bus.ts';
import { EVENTS_LOG_FILE } from '../../../shared/bootstrap/local/runtime.ts';
import type { UpstreamSecretRef } from '../../../shared/domain/model.ts';
import { DETAIL_TYPES, REVOCATION_DETAIL_TYPES, eventsFromChange } from '../../../shared/domain/events.ts';
import { silentLog } from '../../../shared/ports/log.ts';
import type { LanyardEvent } from '../../../shared/ports/index.ts';
import type { IssuerServices } from '../../../shared/ports/services.ts';
import { storeWithFaults } from '../../helpers/faults.ts';
import { KEYS, startTestIssuer, type TestIssuer } from '../../helpers/issuer.ts';

const TRIAGE = 'support-triage/prod';
/** The local change feed polls the committed feed every second; waiting past it shows nothing is published twice. */
const TAIL_POLL_MS = 1_000;

interface Frame {
  readonly id?: string;
  readonly event?: string;
  readonly data: any;
}

interface Stream {
  readonly status: number;
  readonly frames: Frame[];
  until(predicate: (frames: readonly Frame[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Connects to GET /v1/events with fetch and parses server-sent event frames as they arrive. */
async function connect(issuerUrl: string, key: string | undefined, lastEventId?: string): Promise<Stream> {
  const abort = new AbortController();
  const response = await fetch(`${issuerUrl}/v1/events`, {
    headers: { accept: 'text/event-stream', ...(key && { authorization: `Bearer ${key}` }), ...(lastEventId && { 'last-event-id': lastEventId }) },
    signal: abort.signal,
  });
  const frames: Frame[] = [];
  if (response.ok && response.body) {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          buffer += decoder.decode(value, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields: Record<string, string> = {};
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
            }
            if (fields.data !== undefined) frames.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
          }
        }
      } catch {
        // Aborted by close().
      }
    })();
  } else {
    await response.body?.cancel();
  }
  return {
    status: response.status,
    frames,
    async until(predicate, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(frames)) {
        if (Date.now() > deadline) throw new Error(`stream did not reach the expected state; frames: ${JSON.stringify(frames.map((f) => f.id))}`);
        await delay(10);
      }
    },
    close: () => abort.abort(),
  };
}

async function eventsLog(dataDir: string): Promise<LanyardEvent[]> {
  const text = await readFile(join(dataDir, EVENTS_LOG_FILE), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LanyardEvent);
}

const revocationEvents = (events: readonly LanyardEvent[]) => events.filter((e) => REVOCATION_DETAIL_TYPES.has(e.detailType));
const revocationFrames = (frames: readonly Frame[]) => frames.filter((f) => f.event !== undefined && REVOCATION_DETAIL_TYPES.has(f.event));

describe('Events from committed state (embedded default)', () => {
  describe('when revocations commit', () => {
    let issuer: TestIssuer;
    let stream: Stream;
    const targets = [
      { target: { lane: `${TRIAGE}:tickets:read:acme` }, detailType: 'Lane Revoked' },
      { target: { identity: 'old-bot/prod' }, detailType: 'Identity Revoked' },
      { target: { tenant: 'initech' }, detailType: 'Tenant Revoked' },
      { target: { tool: 'legacy' }, detailType: 'Tool Disabled' },
      { target: { tool: 'crm', identity: 'billing-bot/prod' }, detailType: 'Tool Disabled' },
    ];
    const answers: any[] = [];

    beforeAll(async () => {
      issuer = await startTestIssuer();
      stream = await connect(issuer.url, KEYS.verifier);
      const credential = await issuer.post('/v1/credentials', { tool: 'crm', actions: ['crm:read'], tenant: 'acme' }, KEYS.agent);
      for (const { target } of targets) answers.push((await issuer.post('/v1/admin', { command: 'revoke', target, reason: 'events test' }, KEYS.admin)).body);
      answers.push((await issuer.post('/v1/admin', { command: 'revoke', target: { credential: credential.body.credentialId }, reason: 'events test' }, KEYS.admin)).body);
      await issuer.post('/v1/admin', { command: 'reinstate', target: { tenant: 'initech' }, reason: 'events test done' }, KEYS.admin);
      await stream.until((frames) => frames.some((f) => f.event === 'Target Reinstated'));
      // Past a tick of the tail's poll: a late duplicate would show up now.
      await delay(TAIL_POLL_MS + 200);
    });
    afterAll(async () => {
      stream?.close();
      await issuer?.stop();
    });

    it('writes exactly one event per revocation to events.log, in feed order, with the revocation as committed', async () => {
      // Act
      const logged = revocationEvents(await eventsLog(issuer.dataDir));

      // Assess
      expect(logged.map((e) => e.id)).toEqual(['revocation-1', 'revocation-2', 'revocation-3', 'revocation-4', 'revocation-5', 'revocation-6']);
      expect(logged.map((e) => e.detailType)).toEqual([...targets.map((t) => t.detailType), 'Credential Revoked']);
      for (const [i, event] of logged.entries()) {
        const committed = answers[i].result.revocation;
        expect(event).toMatchObject({ source: 'lanyard', time: committed.cutoff });
        expect(event.detail).toEqual({ eventId: event.id, revocation: committed });
        expect(event.detail.revocation).toMatchObject({ seq: i + 1, actor: 'oncall', reason: 'events test' });
      }
    });

    it('streams the same events, once each and in order, on GET /v1/events, with the reinstatement after them', async () => {
      // Prepare
      const logged = await eventsLog(issuer.dataDir);

      // Assess
      const frames = revocationFrames(stream.frames);
      expect(frames.map((f) => f.id)).toEqual(revocationEvents(logged).map((e) => e.id));
      for (const frame of stream.frames) {
        expect(frame.data.id).toBe(frame.id);
        expect(frame.data.detailType).toBe(frame.event);
      }
      // Everything logged after the stream connected (the policy applied at start came before it).
      const sinceConnected = logged.slice(logged.findIndex((e) => e.id === 'revocation-1'));
      expect(stream.frames.map((f) => f.id)).toEqual(sinceConnected.map((e) => e.id));
      expect(stream.frames.at(-1)).toMatchObject({ event: 'Target Reinstated', data: { detail: { targetKey: 'tenant:initech', actor: 'oncall', reason: 'events test done' } } });
    });

    it('replays what followed Last-Event-ID to a reconnecting reader, and nothing before it', async () => {
      // Act
      const resumed = await connect(issuer.url, KEYS.verifier, 'revocation-3');
      try {
        await resumed.until((frames) => frames.some((f) => f.event === 'Target Reinstated'));

        // Assess
        expect(resumed.status).toBe(200);
        expect(resumed.frames.map((f) => f.id)).toEqual(['revocation-4', 'revocation-5', 'revocation-6', `reinstated-${answers[2].result.revocation.id}`]);
      } finally {
        resumed.close();
      }
    });

    it.each([
      ['an agent key', KEYS.agent, 403, 'forbidden'],
      ['no key', undefined, 401, 'unauthenticated'],
    ])('refuses the stream to %s', async (_name, key, status, code) => {
      const refused = await fetch(`${issuer.url}/v1/events`, { headers: key ? { authorization: `Bearer ${key}` } : {} });

      expect(refused.status).toBe(status);
      expect(((await refused.json()) as any).error.code).toBe(code);
    });
  });

  describe('when the revocation record cannot be written', () => {
    let issuer: TestIssuer;
    let faulty: DevServer;

    beforeAll(async () => {
      issuer = await startTestIssuer();
      // The same runtime, but its store fails the revocation append the way DynamoDB would.
      const runtime: IssuerServices = { ...issuer.runtime, store: storeWithFaults(issuer.runtime.store, { appendRevocation: new Error('ProvisionedThroughputExceededException') }) };
      faulty = await startDevServer({ runtime, host: '127.0.0.1', port: 0 });
    });
    afterAll(async () => {
      await faulty?.close();
      await issuer?.stop();
    });

    it('answers 503 issuer_unavailable and publishes no event and no feed entry; a retry publishes exactly one', async () => {
      // Prepare
      const lane = `${TRIAGE}:tickets:write:globex`;
      const seen: LanyardEvent[] = [];
      const unsubscribe = issuer.runtime.events.subscribe((e) => seen.push(e));
      const command = { command: 'revoke', target: { lane }, reason: 'replies looked wrong' };

      try {
        // Act
        const failed = await fetch(`${faulty.url}/v1/admin`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' },
          body: JSON.stringify(command),
        });
        await delay(TAIL_POLL_MS + 200);

        // Assess
        expect(failed.status).toBe(503);
        const body = (await failed.json()) as any;
        expect(body.error).toMatchObject({ code: 'issuer_unavailable', retryable: true });
        expect(JSON.stringify(body)).not.toContain('ProvisionedThroughput');
        expect(revocationEvents(seen)).toEqual([]);
        expect(revocationEvents(await eventsLog(issuer.dataDir))).toEqual([]);
        expect((await issuer.get('/v1/revocations', KEYS.verifier)).body.revocations).toEqual([]);
        // By design (shared/revocation/revoke.ts) the block is written first: issuance on the lane has already stopped.
        const refused = await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:reply'], tenant: 'globex' }, KEYS.agent);
        expect(refused.body.error.code).toBe('lane_revoked');

        // Act: the admin retries against a healthy store.
        const retried = await issuer.post('/v1/admin', command, KEYS.admin);
        await delay(TAIL_POLL_MS + 200);

        // Assess
        expect(retried.status).toBe(200);
        expect(revocationEvents(seen).map((e) => e.id)).toEqual(['revocation-1']);
        expect(revocationEvents(await eventsLog(issuer.dataDir)).map((e) => e.id)).toEqual(['revocation-1']);
        expect((await issuer.get('/v1/revocations', KEYS.verifier)).body.revocations).toHaveLength(1);
      } finally {
        unsubscribe();
      }
    });
  });

  describe('when the issuer restarts on the same data directory', () => {
    let dataDir: string;
    let issuer: TestIssuer | undefined;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'lanyard-events-restart-'));
    });
    afterEach(async () => {
      await issuer?.stop();
      issuer = undefined;
    });
    afterAll(() => rm(dataDir, { recursive: true, force: true }));

    it('resumes the revocation tail without repeating an event: 2 + 1 revocations give seq 1, 2, 3 in events.log', async () => {
      // Prepare
      issuer = await startTestIssuer({ dataDir, inMemory: false });
      for (const tenant of ['acme', 'globex']) {
        const res = await issuer.post('/v1/admin', { command: 'revoke', target: { tenant }, reason: 'before restart' }, KEYS.admin);
        expect(res.status).toBe(200);
      }
      await issuer.stop();

      // Act
      issuer = await startTestIssuer({ dataDir, inMemory: false });
      const res = await issuer.post('/v1/admin', { command: 'revoke', target: { tenant: 'initech' }, reason: 'after restart' }, KEYS.admin);
      await delay(TAIL_POLL_MS + 200);

      // Assess
      expect(res.status).toBe(200);
      const logged = revocationEvents(await eventsLog(dataDir));
      expect(logged.map((e) => (e.detail as any).revocation.seq)).toEqual([1, 2, 3]);
      expect(logged.map((e) => (e.detail as any).revocation.targetKey)).toEqual(['tenant:acme', 'tenant:globex', 'tenant:initech']);
      expect((await issuer.get('/v1/revocations', KEYS.verifier)).body.revocations.map((r: any) => r.seq)).toEqual([1, 2, 3]);
    });

    it('drops, on start, revocation records no live credential can depend on any more (dynalite has no TTL)', async () => {
      // Prepare: a record whose relevance ended an hour ago, written straight to the store.
      issuer = await startTestIssuer({ dataDir, inMemory: false });
      const stale = await issuer.runtime.store.appendRevocation({
        id: 'rev_stale',
        target: { tenant: 'umbrella' },
        targetType: 'tenant',
        targetKey: 'tenant:umbrella',
        cutoff: new Date(Date.now() - 13 * 3600_000).toISOString(),
        relevantUntil: new Date(Date.now() - 3600_000).toISOString(),
        actor: 'test',
        reason: 'long ago',
        requestId: 'req-stale',
      });
      await issuer.stop();

      // Act
      issuer = await startTestIssuer({ dataDir, inMemory: false });

      // Assess
      const kept = await issuer.runtime.store.listRevocations(0, 1000);
      expect(kept.map((r) => r.seq)).not.toContain(stale.seq);
      expect(kept.length).toBeGreaterThan(0);
    });
  });
});

describe('Upstream secret rotations (issue 6)', () => {
  const PROVIDER = 'stripe';
  /** A real-looking key that must never reach an event, whatever the image carries. */
  const SECRET = 'sk_live_51HxSECRETdoNotLeak';
  const first: UpstreamSecretRef = {
    provider: PROVIDER,
    version: 'v-1',
    rotatedAt: '2026-11-22T12:00:00.000Z',
    actor: 'alice@example.com',
    reason: 'initial secret',
    requestId: 'req-1',
  };
  const second: UpstreamSecretRef = {
    provider: PROVIDER,
    version: 'v-2',
    previousVersion: 'v-1',
    rotatedAt: '2026-11-22T13:00:00.000Z',
    overlapUntil: '2026-11-22T13:01:00.000Z',
    actor: 'bob@example.com',
    reason: 'scheduled rotation',
    requestId: 'req-2',
  };

  describe('Function: eventsFromChange', () => {
    it("announces a provider's first secret version, at its rotation time, with a deterministic id", () => {
      // Act
      const events = eventsFromChange({ entity: 'upstreamSecret', newImage: first });

      // Assess
      expect(events).toStrictEqual([
        {
          id: 'secret-stripe-v-1',
          source: 'lanyard',
          detailType: 'Upstream Secret Rotated',
          time: '2026-11-22T12:00:00.000Z',
          detail: { eventId: 'secret-stripe-v-1', provider: PROVIDER, version: 'v-1', rotatedAt: '2026-11-22T12:00:00.000Z', actor: 'alice@example.com', reason: 'initial secret', requestId: 'req-1' },
        },
      ]);
      expect(DETAIL_TYPES.secretRotated).toBe('Upstream Secret Rotated');
    });

    it('announces a new version with the previous one and the overlap', () => {
      // Act
      const events = eventsFromChange({ entity: 'upstreamSecret', oldImage: first, newImage: second });

      // Assess
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ id: 'secret-stripe-v-2', time: second.rotatedAt });
      expect(events[0]!.detail).toStrictEqual({
        eventId: 'secret-stripe-v-2',
        provider: PROVIDER,
        version: 'v-2',
        previousVersion: 'v-1',
        rotatedAt: '2026-11-22T13:00:00.000Z',
        overlapUntil: '2026-11-22T13:01:00.000Z',
        actor: 'bob@example.com',
        reason: 'scheduled rotation',
        requestId: 'req-2',
      });
    });

    it('announces nothing when the same version is written again', () => {
      // Act & Assess
      expect(eventsFromChange({ entity: 'upstreamSecret', oldImage: second, newImage: { ...second, requestId: 'req-3', reason: 're-applied' } })).toStrictEqual([]);
    });

    it('carries version ids only: an attribute the image should never have had stays out of the event', () => {
      // Prepare: an image polluted with the secret and the item's key attributes.
      const polluted = { ...second, secret: SECRET, PK: `UPSTREAM#${PROVIDER}`, SK: 'SECRETREF' } as UpstreamSecretRef;

      // Act
      const events = eventsFromChange({ entity: 'upstreamSecret', oldImage: first, newImage: polluted });

      // Assess
      expect(JSON.stringify(events)).not.toContain(SECRET);
      expect(Object.keys(events[0]!.detail)).not.toContain('PK');
    });
  });

  describe('the embedded default', () => {
    let issuer: TestIssuer;

    beforeAll(async () => {
      issuer = await startTestIssuer();
    });
    afterAll(async () => {
      await issuer?.stop();
    });

    it('publishes one event per committed version change, after the write, to the bus and events.log', async () => {
      // Prepare
      const seen: LanyardEvent[] = [];
      const unsubscribe = issuer.runtime.events.subscribe((e) => seen.push(e));

      try {
        // Act
        await issuer.runtime.store.putUpstreamSecretRef(first);
        const afterFirst = await issuer.runtime.store.getUpstreamSecretRef(PROVIDER);
        await issuer.runtime.store.putUpstreamSecretRef(second);
        await issuer.runtime.store.putUpstreamSecretRef({ ...second, requestId: 'req-3' });

        // Assess
        expect(afterFirst).toStrictEqual(first);
        expect(seen.map((e) => e.id)).toEqual(['secret-stripe-v-1', 'secret-stripe-v-2']);
        const logged = (await eventsLog(issuer.dataDir)).filter((e) => e.detailType === 'Upstream Secret Rotated');
        expect(logged).toStrictEqual(seen);
        expect(logged[1]!.detail).toMatchObject({ version: 'v-2', previousVersion: 'v-1' });
      } finally {
        unsubscribe();
      }
    });

    it('publishes nothing when the pointer write fails', async () => {
      // Prepare: a change feed over a store whose pointer write fails the way DynamoDB would.
      const bus = new LocalEventBus();
      const seen: LanyardEvent[] = [];
      bus.subscribe((e) => seen.push(e));
      const feed = new LocalChangeFeed({ store: issuer.runtime.store, bus, clock: { now: () => Date.now() }, log: silentLog, pollMs: 60_000 });
      const failing = feed.wrap(storeWithFaults(issuer.runtime.store, { putUpstreamSecretRef: new Error('ProvisionedThroughputExceededException') }));

      // Act
      const error = await failing.putUpstreamSecretRef({ ...second, provider: 'openai' }).catch((e: unknown) => e);
      feed.close();

      // Assess
      expect(error).toBeInstanceOf(Error);
      expect(seen).toEqual([]);
      expect(await issuer.runtime.store.getUpstreamSecretRef('openai')).toBeUndefined();
    });
  });
});
