import { describe, expect, it } from 'vitest';
import { bearerChallenge, challengeErrorFor, toErrorResponse } from '@lanyard/sdk/challenge';
import { VerificationError } from '../../../packages/sdk/src/errors.ts';

describe('bearerChallenge', () => {
  it('is the bare challenge without attributes (RFC 6750 §3.1: no credentials, no error)', () => {
    expect(bearerChallenge()).toBe('Bearer realm="lanyard"');
  });

  it('lists error, description, lanyard_code and scope in that order, only those given', () => {
    expect(bearerChallenge({ error: 'invalid_token', code: 'credential_revoked' })).toBe('Bearer realm="lanyard", error="invalid_token", lanyard_code="credential_revoked"');
    expect(bearerChallenge({ error: 'insufficient_scope', description: 'needs more', code: 'insufficient_scope', scope: 'a:b c:d' })).toBe(
      'Bearer realm="lanyard", error="insufficient_scope", error_description="needs more", lanyard_code="insufficient_scope", scope="a:b c:d"',
    );
  });

  it('drops the characters RFC 6750 does not allow in a quoted attribute', () => {
    expect(bearerChallenge({ error: 'invalid_token', description: 'say "no"\\\n' })).toBe('Bearer realm="lanyard", error="invalid_token", error_description="say no"');
  });

  it('is what the verifier answers with', () => {
    const answer = toErrorResponse(new VerificationError('token_expired', 'the token has expired'));

    expect(answer.headers['www-authenticate']).toBe(bearerChallenge({ error: 'invalid_token', description: 'the token has expired', code: 'token_expired' }));
  });
});

describe('challengeErrorFor', () => {
  it.each(['token_malformed', 'token_expired', 'token_not_yet_valid', 'signature_invalid', 'unknown_key', 'wrong_issuer', 'wrong_audience', 'credential_revoked'])(
    '%s refuses the token (invalid_token)',
    (code) => {
      expect(challengeErrorFor(code)).toBe('invalid_token');
    },
  );

  it('insufficient_scope is its own error; other codes carry none', () => {
    expect(challengeErrorFor('insufficient_scope')).toBe('insufficient_scope');
    expect(challengeErrorFor('verifier_unavailable')).toBeUndefined();
    expect(challengeErrorFor('unauthenticated')).toBeUndefined();
    expect(challengeErrorFor('route_not_allowed')).toBeUndefined();
  });
});
