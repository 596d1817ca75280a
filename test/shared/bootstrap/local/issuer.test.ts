/**
 * Starting the issuer on one machine (shared/bootstrap/local/issuer.ts), as `lanyard dev`,
 * `lanyard serve` and the tests do: which policy a start applies, the public issuer URL, and
 * the graceful stop.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startIssuer, stopIssuer, type PolicySource, type RunningIssuer } from '../../../../shared/bootstrap/local/issuer.ts';
import { silentLog } from '../../../../shared/ports/log.ts';
import { KEYS, testPolicy } from '../../../helpers/issuer.ts';

const READ = { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' };

describe('Local issuer: start and stop', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });
  const dataDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lanyard-issuer-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const start = async (options: Partial<Parameters<typeof startIssuer>[0]> & { dataDir: string }) => {
    const issuer = await startIssuer({ port: 0, host: '127.0.0.1', inMemory: false, processMetrics: false, log: silentLog, ...options });
    cleanup.push(() => issuer.close());
    return issuer;
  };
  const issue = (issuer: RunningIssuer) =>
    fetch(`${issuer.server.url}/v1/credentials`, { method: 'POST', headers: { authorization: `Bearer ${KEYS.agent}`, 'content-type': 'application/json' }, body: JSON.stringify(READ) });

  it('applies the first-start policy to an empty data dir only, and says where each applied policy came from', async () => {
    // Prepare
    const dir = await dataDir();
    const sources: PolicySource['kind'][] = [];
    const onPolicyApplied = (_: unknown, source: PolicySource) => sources.push(source.kind);

    // Act
    const first = await start({ dataDir: dir, firstStartPolicy: testPolicy(), onPolicyApplied });
    await first.close();
    const second = await start({ dataDir: dir, firstStartPolicy: testPolicy(), onPolicyApplied });
    const res = await issue(second);

    // Assess
    expect(first.applied?.changes.length).toBeGreaterThan(0);
    expect(second.applied).toBeUndefined();
    expect(sources).toEqual(['first start']);
    expect(res.status).toBe(201);
  });

  it('starts with no policy at all when given none (lanyard serve on an empty data dir)', async () => {
    // Prepare
    const dir = await dataDir();

    // Act
    const issuer = await start({ dataDir: dir });

    // Assess
    expect(issuer.applied).toBeUndefined();
    expect(issuer.keys).toEqual([]);
    expect(await issuer.runtime.store.listPrincipals()).toEqual([]);
  });

  it('puts the public issuer URL it is given in tokens and metadata, not the address it binds', async () => {
    // Prepare
    const dir = await dataDir();
    const issuer = await start({ dataDir: dir, policy: testPolicy(), issuer: 'https://lanyard.example.com' });

    // Act
    const token = ((await (await issue(issuer)).json()) as { token: string }).token;
    const metadata = (await (await fetch(`${issuer.server.url}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };

    // Assess
    expect(decodeJwt(token).iss).toBe('https://lanyard.example.com');
    expect(metadata.issuer).toBe('https://lanyard.example.com');
    expect(issuer.server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('stopIssuer drains the server, then closes the store: the credential answered before is on disk after a restart', async () => {
    // Prepare
    const dir = await dataDir();
    const issuer = await start({ dataDir: dir, policy: testPolicy() });
    const issued = (await (await issue(issuer)).json()) as { credentialId: string };

    // Act
    const stopped = await stopIssuer(issuer);
    const again = await start({ dataDir: dir });

    // Assess
    expect(stopped).toEqual({ cut: 0 });
    await expect(issuer.runtime.ready()).rejects.toThrow('closed');
    expect(await again.runtime.store.getCredential(issued.credentialId)).toMatchObject({ decision: 'issued' });
  });
});
