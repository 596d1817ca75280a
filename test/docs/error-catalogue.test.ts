/**
 * docs/errors.md, the catalogue agents code against, is checked against the errors modules:
 * every code of the issuer (ERROR_CATALOG) and of the SDK has a row, every row is a code, and
 * status and `retryable` agree. The SDK's code lists come from records over its code types (the
 * compiler refuses one that misses or invents a code); the issuer's copies of the SDK's codes
 * (the broker answers with the verifier's token codes, the source passes the issuer's through)
 * are checked against them here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG } from '../../shared/domain/errors.ts';
import {
  ISSUANCE_ERROR_CODES,
  ISSUER_ANSWER_CODES,
  TOKEN_ERROR_CODES,
  VERIFICATION_ERROR_CODES,
  VerificationError,
  type FleetFetchErrorCode,
  type IssuanceErrorCode,
  type VerificationErrorCode,
} from '../../packages/sdk/src/errors.ts';

// The SDK's lists are built from records over its code types (packages/sdk/src/errors.ts).
const VERIFICATION_CODES = Object.fromEntries(VERIFICATION_ERROR_CODES.map((code) => [code, true])) as Record<VerificationErrorCode, true>;
const ISSUANCE_CODES = Object.fromEntries(ISSUANCE_ERROR_CODES.map((code) => [code, true])) as Record<IssuanceErrorCode, true>;
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

  it('has every verifier code the broker answers with, at the verifier\'s status, not retryable', () => {
    for (const code of VERIFICATION_ERROR_CODES.filter((c) => c !== 'verifier_unavailable')) {
      expect(ERROR_CATALOG[code as keyof typeof ERROR_CATALOG], code).toEqual({ status: new VerificationError(code, 'checked').status, retryable: false });
    }
    expect(TOKEN_ERROR_CODES).toEqual(VERIFICATION_ERROR_CODES.filter((code) => new VerificationError(code, 'checked').status === 401));
  });

  it('has every issuer code the credential source passes through', () => {
    for (const code of ISSUER_ANSWER_CODES) expect(Object.hasOwn(ERROR_CATALOG, code), code).toBe(true);
  });

  it('names no code that neither errors module has', async () => {
    const known = new Set([...Object.keys(ERROR_CATALOG), ...Object.keys(VERIFICATION_CODES), ...Object.keys(ISSUANCE_CODES), ...Object.keys(FLEET_FETCH_CODES)]);

    expect([...(await catalogue()).keys()].filter((code) => !known.has(code))).toEqual([]);
  });
});
