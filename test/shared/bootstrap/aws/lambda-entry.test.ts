import { describe, expect, it } from 'vitest';
import { onAws } from '../../../../shared/bootstrap/aws/lambda-entry.ts';
import type { IssuerServices } from '../../../../shared/ports/services.ts';

const httpEvent = { version: '2.0', requestContext: { http: { method: 'POST', path: '/v1/credentials' }, requestId: 'req-cold' } };

describe('Function: onAws', () => {
  it('answers an HTTP caller 503 issuer_unavailable when the runtime cannot start, without the cause', async () => {
    // Prepare
    const handler = onAws(
      () => () => Promise.resolve({ statusCode: 201 }),
      () => Promise.reject(new Error('environment variable LANYARD_TABLE is required')),
    );

    // Act
    const answer = (await handler(httpEvent)) as { statusCode: number; headers: Record<string, string>; body: string };

    // Assess
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(JSON.parse(answer.body).error).toMatchObject({ code: 'issuer_unavailable', retryable: true, requestId: 'req-cold' });
    expect(answer.body).not.toContain('LANYARD_TABLE');
  });

  it('lets a direct invocation fail loudly, and tries to start again on the next call', async () => {
    let attempts = 0;
    const handler = onAws(
      () => () => Promise.resolve('ran'),
      () => (++attempts === 1 ? Promise.reject(new Error('KMS key spec is not ECC_NIST_P256')) : Promise.resolve({} as IssuerServices)),
    );

    await expect(handler({ command: 'tool.list' })).rejects.toThrow('ECC_NIST_P256');
    await expect(handler({ command: 'tool.list' })).resolves.toBe('ran');
    expect(attempts).toBe(2);
  });

  it('builds the runtime once for every later invocation', async () => {
    let builds = 0;
    const handler = onAws(
      () => () => Promise.resolve('ok'),
      () => {
        builds += 1;
        return Promise.resolve({} as IssuerServices);
      },
    );

    await Promise.all([handler(httpEvent), handler(httpEvent), handler(httpEvent)]);

    expect(builds).toBe(1);
  });
});
