/**
 * The SDK keeps its own copy of the event detail types it acts on (it imports nothing of the
 * issuer): checked here against the issuer's (shared/domain/events.ts), so they cannot drift.
 */
import { describe, expect, it } from 'vitest';
import { DETAIL_TYPES, REVOCATION_DETAIL_TYPES } from '../../shared/domain/events.ts';
import { KEY_ROTATED_EVENT, REVOCATION_EVENTS } from '../../packages/sdk/src/revocations.ts';

describe('the SDK\'s event detail types', () => {
  it('are the issuer\'s revocation detail types, all of them', () => {
    expect([...REVOCATION_EVENTS].sort()).toEqual([...REVOCATION_DETAIL_TYPES].sort());
  });

  it('name the key rotation as the issuer does', () => {
    expect(KEY_ROTATED_EVENT).toBe(DETAIL_TYPES.rotated);
  });
});
