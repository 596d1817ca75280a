/**
 * `aws-calls` section (issue 12, "On AWS"): the AWS calls of one issuance on the AWS
 * composition root, for a cold container (its first issuance) and a warm one (the next),
 * counted at the clients over dynalite and the KMS fake (test/helpers/issuance-calls.ts), and
 * whether each meets its target: cold ≤ 2 DynamoDB reads and ≤ 1 KMS call besides Sign; warm
 * 1 Sign and 1 write. Counts, not timings: the same on any machine.
 */
import { countIssuanceCalls, kmsBesidesSignOf, readsOf, writesOf, type CallCount } from '../test/helpers/issuance-calls.ts';
import type { Row, Section } from './run.ts';

const COLD_TARGET = { reads: 2, kmsBesidesSign: 1 } as const;

function listed(calls: Readonly<Record<string, number>>): string {
  const entries = Object.entries(calls);
  return entries.length === 0 ? 'none' : entries.map(([command, n]) => `${command} ${n}`).join(', ');
}

function met(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}

function row(label: string, count: CallCount, verdict: string): Row {
  return {
    subject: `issue calls: ${label}`,
    perSecond: 0,
    note: `DynamoDB ${readsOf(count)} reads, ${writesOf(count)} writes (${listed(count.dynamodb)}); KMS ${listed(count.kms)}; status ${count.status}; ${verdict}`,
  };
}

export const awsCallsSection: Section = {
  name: 'aws-calls',
  describe: 'AWS calls of one issuance on the AWS composition root (dynalite + KMS fake), cold container and warm, against the issue 12 targets',
  run: async () => {
    const { cold, warm } = await countIssuanceCalls();
    const coldReads = readsOf(cold) <= COLD_TARGET.reads;
    const coldKms = kmsBesidesSignOf(cold) <= COLD_TARGET.kmsBesidesSign;
    const warmOk = readsOf(warm) === 0 && writesOf(warm) === 1 && (warm.kms['Sign'] ?? 0) === 1 && kmsBesidesSignOf(warm) === 0;
    return [
      row('cold container, 1st issuance', cold, `target ≤ ${COLD_TARGET.reads} reads ${met(coldReads)}, ≤ ${COLD_TARGET.kmsBesidesSign} KMS call besides Sign ${met(coldKms)}`),
      row('warm container, next issuance', warm, `target 1 Sign + 1 write ${met(warmOk)}`),
    ];
  },
};
