import { EventBridgeClient, EventBridgeServiceException, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { EventBridgePublisher } from '../../../../shared/adapters/aws/eventbridge-publisher.ts';
import { LanyardError } from '../../../../shared/domain/errors.ts';
import type { LanyardEvent } from '../../../../shared/ports/index.ts';

const BUS = 'lanyard-events';

function event(i: number, detail: Record<string, unknown> = {}): LanyardEvent {
  return {
    id: `evt-${String(i).padStart(2, '0')}`,
    source: 'lanyard',
    detailType: 'Lane Revoked',
    time: '2026-11-22T12:00:00.000Z',
    detail: { target: { lane: `agent-${i}/prod:tickets:write:acme` }, cutoff: '2026-11-22T12:00:00.000Z', reason: 'secret-reason', ...detail },
  };
}

/**
 * A PutEvents that behaves like EventBridge: at most 10 entries, results in request order,
 * per-entry failures for the entries `failing` picks (by event id in the detail).
 */
function fakeEventBridge(failing: (lane: string, call: number) => boolean = () => false) {
  const client = new EventBridgeClient({ region: 'eu-west-1' });
  const mock = mockClient(client);
  const delivered: PutEventsRequestEntry[] = [];
  let call = 0;
  mock.on(PutEventsCommand).callsFake((input: { Entries?: PutEventsRequestEntry[] }) => {
    call++;
    const entries = input.Entries ?? [];
    if (entries.length > 10) throw new EventBridgeServiceException({ name: 'ValidationException', message: 'too many entries', $fault: 'client', $metadata: {} });
    let failed = 0;
    const results = entries.map((entry, index) => {
      const lane = (JSON.parse(entry.Detail ?? '{}') as { target: { lane: string } }).target.lane;
      if (failing(lane, call)) {
        failed++;
        return { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service error' };
      }
      delivered.push(entry);
      return { EventId: `eb-${call}-${index}` };
    });
    return { FailedEntryCount: failed, Entries: results };
  });
  return { client, mock, delivered };
}

const noSleep = () => Promise.resolve();

describe('Class: EventBridgePublisher', () => {
  describe('Method: publish', () => {
    it('sends 23 events in 3 PutEvents calls of at most 10, each entry shaped for the bus', async () => {
      // Prepare
      const eb = fakeEventBridge();
      const publisher = new EventBridgePublisher({ client: eb.client, busName: BUS, sleep: noSleep });
      const events = Array.from({ length: 23 }, (_, i) => event(i));

      // Act
      await publisher.publish(events);

      // Assess
      const calls = eb.mock.commandCalls(PutEventsCommand);
      expect(calls.map((c) => c.args[0].input.Entries?.length)).toEqual([10, 10, 3]);
      expect(eb.delivered).toHaveLength(23);
      expect(calls[0]?.args[0].input.Entries?.[0]).toEqual({
        Source: 'lanyard',
        DetailType: 'Lane Revoked',
        Detail: JSON.stringify({ ...events[0]?.detail, eventId: 'evt-00' }),
        Time: new Date('2026-11-22T12:00:00.000Z'),
        EventBusName: BUS,
      });
    });

    it('puts each event id in its detail as eventId, since PutEvents takes no id of its own', async () => {
      // Prepare
      const eb = fakeEventBridge();
      const publisher = new EventBridgePublisher({ client: eb.client, busName: BUS, sleep: noSleep });
      const events = [event(0), event(1, { eventId: 'evt-01' })];

      // Act
      await publisher.publish(events);

      // Assess
      const details = eb.delivered.map((entry) => JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>);
      expect(details.map((detail) => detail['eventId'])).toEqual(['evt-00', 'evt-01']);
      expect(eb.delivered.every((entry) => !('Id' in entry) && !('EventId' in entry))).toBe(true);
    });

    it('resends only the entries that failed, after a backoff', async () => {
      // Prepare
      const eb = fakeEventBridge((lane, call) => call === 1 && (lane.startsWith('agent-3/') || lane.startsWith('agent-7/')));
      const sleeps: number[] = [];
      const publisher = new EventBridgePublisher({
        client: eb.client,
        busName: BUS,
        baseDelayMs: 100,
        random: () => 0.5,
        sleep: (ms) => {
          sleeps.push(ms);
          return Promise.resolve();
        },
      });

      // Act
      await publisher.publish(Array.from({ length: 10 }, (_, i) => event(i)));

      // Assess
      const calls = eb.mock.commandCalls(PutEventsCommand);
      expect(calls).toHaveLength(2);
      const resent = (calls[1]?.args[0].input.Entries ?? []).map((e) => (JSON.parse(e.Detail ?? '{}') as { target: { lane: string } }).target.lane);
      expect(resent).toEqual(['agent-3/prod:tickets:write:acme', 'agent-7/prod:tickets:write:acme']);
      expect(eb.delivered).toHaveLength(10);
      expect(sleeps).toEqual([50]);
    });

    it('after maxAttempts throws the ids of the events still failing, never their detail', async () => {
      // Prepare
      const eb = fakeEventBridge((lane) => lane.startsWith('agent-4/') || lane.startsWith('agent-12/'));
      const sleeps: number[] = [];
      const publisher = new EventBridgePublisher({
        client: eb.client,
        busName: BUS,
        maxAttempts: 3,
        random: () => 1,
        sleep: (ms) => {
          sleeps.push(ms);
          return Promise.resolve();
        },
      });

      // Act
      let caught: unknown;
      try {
        await publisher.publish(Array.from({ length: 15 }, (_, i) => event(i)));
      } catch (error) {
        caught = error;
      }

      // Assess
      expect(caught).toBeInstanceOf(LanyardError);
      const error = caught as LanyardError;
      expect(error.code).toBe('issuer_unavailable');
      expect(error.context.eventIds).toEqual(['evt-04', 'evt-12']);
      expect(error.message).toBe('2 event(s) not published to lanyard-events after 3 attempts (InternalFailure): evt-04, evt-12');
      expect(error.message).not.toContain('secret-reason');
      expect(JSON.stringify(error.context)).not.toContain('secret-reason');
      expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(4);
      expect(sleeps).toEqual([100, 200]);
    });

    it('retries a whole call that failed and then succeeds', async () => {
      // Prepare
      const eb = fakeEventBridge();
      eb.mock
        .on(PutEventsCommand)
        .rejectsOnce(new EventBridgeServiceException({ name: 'ThrottlingException', message: 'Rate exceeded', $fault: 'client', $metadata: {} }))
        .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e1' }, { EventId: 'e2' }] });
      const publisher = new EventBridgePublisher({ client: eb.client, busName: BUS, sleep: noSleep });

      // Act
      await publisher.publish([event(1), event(2)]);

      // Assess
      expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(2);
    });

    it('refuses an entry over 256 KB before sending anything', async () => {
      // Prepare
      const eb = fakeEventBridge();
      const publisher = new EventBridgePublisher({ client: eb.client, busName: BUS, sleep: noSleep });
      const big = event(9, { blob: 'x'.repeat(256 * 1024) });

      // Act
      let caught: unknown;
      try {
        await publisher.publish([event(1), big]);
      } catch (error) {
        caught = error;
      }

      // Assess
      expect((caught as LanyardError).code).toBe('request_too_large');
      expect((caught as LanyardError).context.eventId).toBe('evt-09');
      expect((caught as LanyardError).message).not.toContain('xxx');
      expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(0);
    });

    it('splits a chunk that would pass 256 KB in total even with fewer than 10 entries', async () => {
      // Prepare
      const eb = fakeEventBridge();
      const publisher = new EventBridgePublisher({ client: eb.client, busName: BUS, sleep: noSleep });
      const events = Array.from({ length: 4 }, (_, i) => event(i, { blob: 'x'.repeat(100 * 1024) }));

      // Act
      await publisher.publish(events);

      // Assess
      expect(eb.mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries?.length)).toEqual([2, 2]);
    });

    it('sends nothing for no events', async () => {
      // Prepare
      const eb = fakeEventBridge();

      // Act
      await new EventBridgePublisher({ client: eb.client, busName: BUS }).publish([]);

      // Assess
      expect(eb.mock.commandCalls(PutEventsCommand)).toHaveLength(0);
    });
  });

  describe('Method: constructor', () => {
    it('refuses a missing bus name and a maxAttempts below 1', () => {
      // Prepare
      const client = new EventBridgeClient({ region: 'eu-west-1' });

      // Act + Assess
      expect(() => new EventBridgePublisher({ client, busName: '' })).toThrow(/busName is required/);
      expect(() => new EventBridgePublisher({ client, busName: BUS, maxAttempts: 0 })).toThrow(/maxAttempts must be a positive integer/);
    });
  });
});
