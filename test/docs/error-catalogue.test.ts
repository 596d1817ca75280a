/**
 * docs/errors.md, the catalogue agents code against, is checked against the errors modules:
 * every code of the issuer (ERROR_CATALOG) and of the SDK has a row, every row is a code, and
 * status and `retryable` agree. The SDK's codes are types, so their lists here are records
 * over the type: the compiler refuses a list that misses or invents a code.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG } from '../../shared/domain/errors.ts';
import { VerificationError, type FleetFetchErrorCode, type IssuanceErrorCode, type VerificationErrorCode } from '../../packages/sdk/src/errors.ts';

const VERIFICATION_CODES: Record<VerificationErrorCode, true> = {
  token_malformed: true, token_expired: true, token_not_yet_valid: true, signature_invalid: true, unknown_key: true,
  wrong_issuer: true, wrong_audience: true, credential_revoked: true, insufficient_scope: true, verifier_unavailable: true,
};
const ISSUANCE_CODES: Record<IssuanceErrorCode, true> = {
  invalid_request: true, unauthenticated: true, forbidden: true, not_granted: true, identity_revoked: true, lane_revoked: true,
  tenant_revoked: true, tool_disabled: true, kind_not_allowed: true, credential_revoked: true, rate_limited: true,
  issuer_unavailable: true, aws_credentials_unavailable: true, circuit_open: true, source_closed: true,
};
const FLEET_FETCH_CODES: Record<FleetFetchErrorCode, true> = { origin_not_allowed: true };

interface Row {
  readonly status: number | undefined;
  readonly retryable: boolean;
}

/** The catalogue's rows: `| \`code\` | status or — | yes/no | … |`. */
async function catalogue(): Promise<Map<string, Row>> {
  const text = await readFile(join(import.meta.dirname, '../../docs/errors.md'), 'utf8');
  const rows = new Map<string, Row>();
  for (const match of text.matchAll(/^\| `([a-z_]+)` \| (\d{3}|—) \| (yes|no) \|/gm)) {
    const [, code, status, retryable] = match as unknown as [string, string, string, string];
    expect(rows.has(code), `${code} has two rows`).toBe(false);
    rows.set(code, { status: status === '—' ? undefined : Number(status), retryable: retryable === 'yes' });
  }
  return rows;
}

describe('File: docs/errors.md', () => {
  it('has every issuer code with its status and retryable', async () => {
    const rows = await catalogue();

    for (const [code, { status, retryable }] of Object.entries(ERROR_CATALOG)) {
      expect(rows.get(code), code).toEqual({ status, retryable });
    }
  });

  it('has every verifier code with the status the SDK answers, retryable only for 503', async () => {
    const rows = await catalogue();

    for (const code of Object.keys(VERIFICATION_CODES) as VerificationErrorCode[]) {
      const status = new VerificationError(code, 'checked').status;
      expect(rows.get(code), code).toEqual({ status, retryable: status === 503 });
    }
  });

  it('has every code of the agent SDK; those the issuer does not send never cross HTTP', async () => {
    const rows = await catalogue();

    for (const code of [...Object.keys(ISSUANCE_CODES), ...Object.keys(FLEET_FETCH_CODES)]) {
      expect(rows.has(code), code).toBe(true);
      if (!Object.hasOwn(ERROR_CATALOG, code) && !Object.hasOwn(VERIFICATION_CODES, code)) expect(rows.get(code)?.status, code).toBeUndefined();
    }
  });

  it('names no code that neither errors module has', async () => {
    const known = new Set([...Object.keys(ERROR_CATALOG), ...Object.keys(VERIFICATION_CODES), ...Object.keys(ISSUANCE_CODES), ...Object.keys(FLEET_FETCH_CODES)]);

    expect([...(await catalogue()).keys()].filter((code) => !known.has(code))).toEqual([]);
  });
});
