/**
 * Request targets no URL parser accepts (`//`, `/\`) reach the local server from anyone who can
 * reach its port, before any key is checked: each is a typed 400 and the issuer keeps serving.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { KEYS, startTestIssuer, type TestIssuer } from '../../../helpers/issuer.ts';

/** Sends one raw HTTP/1.1 request line (fetch would normalise the target) and resolves with the raw answer. */
function rawRequest(url: string, target: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n\r\n`);
    });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('Local server: request targets that are not URLs', () => {
  let issuer: TestIssuer | undefined;
  afterEach(async () => {
    await issuer?.stop();
    issuer = undefined;
  });

  it.each(['//', '/\\'])('answers GET %s with 400 invalid_request naming the path, and keeps serving', async (target) => {
    // Prepare
    issuer = await startTestIssuer();

    // Act
    const answer = await rawRequest(issuer.url, target);
    const after = await issuer.post('/v1/credentials', { tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' }, KEYS.agent);

    // Assess
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(answer).toContain('"code":"invalid_request"');
    expect(answer).toContain('"field":"path"');
    expect(after.status).toBe(201);
  });
});
