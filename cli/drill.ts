/**
 * `lanyard drill`: the revocation drill, pointed at any running issuer. It proves the fleet
 * can lose one lane without confusing the adjacent ones:
 *
 * 1. mint a read lane and a write lane for the same tool, each bound to a visible identity,
 *    tenant, task and quota bucket;
 * 2. keep a read task calling through a resource-server verifier;
 * 3. revoke only the write lane;
 * 4. the write side must get `credential_revoked` (verifier) and `lane_revoked` (issuer), not
 *    a generic failure; the read side must keep working, call after call;
 * 5. the audit trail must show which principal, lane and quota bucket survived.
 *
 * Each step is printed with its outcome; the verdict is PASS only if every check held.
 */
import { randomUUID } from 'node:crypto';
import { createVerifier, isVerificationError } from '@lanyard/sdk';
import type { AwsSigningOptions } from '@lanyard/sdk/aws';
import { counted } from '../shared/lib/words.ts';
import { adminCommand, callIssuer, IssuerCallError, type IssuerClientOptions } from './client.ts';

export interface DrillOptions {
  readonly url: string;
  /** How the drill calls as an agent: a local API key, or SigV4 as an IAM principal bound to an agent. */
  readonly agent: IssuerClientOptions;
  /** How it runs admin commands: `POST /v1/admin` with an admin key, or the admin Lambda. */
  readonly admin: IssuerClientOptions;
  /** The resource-server side: a verifier key, or (deployed) SigV4 as an IAM role bound to a verifier, polling the feed. */
  readonly verifier: { readonly apiKey: string } | { readonly aws: AwsSigningOptions; readonly pollIntervalMs: number };
  readonly tool: string;
  readonly readAction: string;
  readonly writeAction: string;
  readonly tenant: string;
  /** How long after the revoke is acknowledged the verifier must refuse the write side. @default 1000 */
  readonly boundMs?: number;
  /** Lift the write lane's block when the drill ends. @default true */
  readonly reinstate?: boolean;
  readonly out?: (line: string) => void;
}

export interface DrillCheck {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DrillReport {
  readonly verdict: 'PASS' | 'FAIL';
  readonly checks: readonly DrillCheck[];
  readonly readCalls: number;
  readonly readFailures: number;
  readonly refusedAfterMs?: number;
}

interface Issued {
  readonly credentialId: string;
  readonly token: string;
  readonly identity: string;
  readonly lane: string;
  readonly tenant: string;
  readonly audience: string;
  readonly quotaBucket: string;
}

export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const out = options.out ?? ((line: string) => console.log(line));
  const boundMs = options.boundMs ?? 1_000;
  const checks: DrillCheck[] = [];
  const check = (step: string, ok: boolean, detail: string) => {
    checks.push({ step, ok, detail });
    out(`${ok ? 'ok  ' : 'FAIL'} ${step}: ${detail}`);
  };
  const { agent, admin } = options;
  const run = randomUUID().slice(0, 8);
  const ask = (action: string, task: string) =>
    callIssuer(agent, 'POST', '/v1/credentials', {
      tool: options.tool,
      actions: [action],
      tenant: options.tenant,
      task: { id: `drill-${run}-${task}`, purpose: `revocation drill (${task} side)` },
    }) as Promise<Issued>;

  out(`revocation drill ${run} against ${options.url}`);
  const read = await ask(options.readAction, 'read');
  const write = await ask(options.writeAction, 'write');
  for (const [side, c] of [['read', read], ['write', write]] as const) {
    out(`     ${side.padEnd(5)} lane ${c.lane}  identity ${c.identity}  tenant ${c.tenant}  task drill-${run}-${side}  quota ${c.quotaBucket}  credential ${c.credentialId}`);
  }
  check('mint', read.lane !== write.lane && read.identity === write.identity, 'a read lane and a write lane for the same identity and tool');

  const verifier = createVerifier({
    issuer: options.url,
    audience: read.audience,
    // No event stream on AWS: a deployed verifier polls the feed.
    revocations: 'aws' in options.verifier ? { mode: 'poll', ...options.verifier } : { mode: 'stream', apiKey: options.verifier.apiKey },
  });
  let readCalls = 0;
  let readFailures = 0;
  let lastReadError = '';
  let reading = true;
  const readLoop = (async () => {
    while (reading) {
      try {
        await verifier.verify(read.token, { action: options.readAction });
        readCalls += 1;
      } catch (error) {
        readFailures += 1;
        lastReadError = isVerificationError(error) ? error.code : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();

  let refusedAfterMs: number | undefined;
  try {
    await verifier.ready();
    await verifier.verify(write.token, { action: options.writeAction });
    check('before', true, 'the write credential verifies while the read task calls');

    const sentAt = Date.now();
    await adminCommand(admin, { command: 'revoke', target: { lane: write.lane }, reason: `revocation drill ${run}: cut the write lane only` });
    // The bound runs from the revoke's acknowledgement: that is when the admin knows it happened.
    const revokedAt = Date.now();
    out(`     revoked lane ${write.lane} (acknowledged in ${revokedAt - sentAt} ms)`);

    let writeCode = '';
    let revokedTarget = '';
    while (Date.now() - revokedAt < boundMs * 5) {
      try {
        await verifier.verify(write.token, { action: options.writeAction });
      } catch (error) {
        if (isVerificationError(error)) {
          writeCode = error.code;
          revokedTarget = error.context.revokedTarget?.key ?? '';
          refusedAfterMs = Date.now() - revokedAt;
          break;
        }
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    check(
      'write refused by the verifier',
      writeCode === 'credential_revoked' && revokedTarget === `lane:${write.lane}` && refusedAfterMs !== undefined && refusedAfterMs <= boundMs,
      writeCode ? `${writeCode} (target ${revokedTarget}) after ${refusedAfterMs} ms; bound ${boundMs} ms` : `still accepted after ${boundMs * 5} ms`,
    );

    const reissue = await ask(options.writeAction, 'write-again').then(
      () => 'issued',
      (error: unknown) => (error instanceof IssuerCallError ? ((error.body as { error?: { code?: string } }).error?.code ?? `HTTP ${error.status}`) : String(error)),
    );
    check('write refused by the issuer', reissue === 'lane_revoked', `new write credential: ${reissue}`);

    // Let the read task run on after the cut, then judge it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const readAgain = await ask(options.readAction, 'read-again').then(
      () => 'issued',
      (error: unknown) => String(error),
    );
    check('read side keeps working', readFailures === 0 && readCalls > 0 && readAgain === 'issued', `${counted(readCalls, 'read call')}, ${readFailures} failed${lastReadError ? ` (${lastReadError})` : ''}; new read credential: ${readAgain}`);
  } finally {
    reading = false;
    await readLoop;
    verifier.close();
  }

  const audit = async (lane: string) =>
    ((await adminCommand(admin, { command: 'audit.query', by: 'lane', value: lane, limit: 100 })) as { items: { decision: string; principal?: string; quotaBucket?: string; task?: { id: string } }[] }).items;
  const [readTrail, writeTrail] = await Promise.all([audit(read.lane), audit(write.lane)]);
  const readIssued = readTrail.filter((r) => r.decision === 'issued' && r.task?.id.startsWith(`drill-${run}`));
  const writeRevoked = writeTrail.filter((r) => r.decision === 'revoked');
  const writeDenied = writeTrail.filter((r) => r.decision === 'denied' && r.task?.id === `drill-${run}-write-again`);
  const survivor = readIssued[0];
  check(
    'audit trail',
    readIssued.length >= 2 && writeRevoked.length >= 1 && writeDenied.length === 1,
    survivor
      ? `read lane survived: principal ${survivor.principal}, lane ${read.lane}, quota ${survivor.quotaBucket}; write lane: ${counted(writeRevoked.length, 'revocation')} by ${(writeRevoked[0] as { actor?: string } | undefined)?.actor ?? '?'}, ${counted(writeDenied.length, 'refused re-issue')}`
      : 'no issuance record for the read lane',
  );

  if (options.reinstate ?? true) {
    await adminCommand(admin, { command: 'reinstate', target: { lane: write.lane }, reason: `revocation drill ${run} over` });
    out(`     reinstated lane ${write.lane} (credentials issued before the cut-off stay dead)`);
  }
  const verdict = checks.every((c) => c.ok) ? 'PASS' : 'FAIL';
  out(`verdict: ${verdict}`);
  return { verdict, checks, readCalls, readFailures, ...(refusedAfterMs !== undefined && { refusedAfterMs }) };
}
