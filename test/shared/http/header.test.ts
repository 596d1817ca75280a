/** `header()` (shared/http/middleware.ts): a header by name, whatever case the event spells it in. */
import { describe, expect, it } from 'vitest';
import { header } from '../../../shared/http/middleware.ts';
import type { HttpEvent } from '../../../shared/http/types.ts';

function withHeaders(headers: Record<string, string> | undefined): HttpEvent {
  return { headers, requestContext: { requestId: 'r', http: { method: 'POST', path: '/' } } } as unknown as HttpEvent;
}

describe('header', () => {
  it('finds a lower-case header under any spelling of its name', () => {
    const event = withHeaders({ authorization: 'Bearer lk_x', 'content-type': 'application/json' });
    expect(header(event, 'authorization')).toBe('Bearer lk_x');
    expect(header(event, 'Content-Type')).toBe('application/json');
  });

  it('finds a header the event spells in mixed case (an event not from API Gateway)', () => {
    const event = withHeaders({ 'Content-Type': 'text/plain', 'X-Amz-Date': '20261202T000000Z' });
    expect(header(event, 'content-type')).toBe('text/plain');
    expect(header(event, 'x-amz-date')).toBe('20261202T000000Z');
  });

  it('is undefined for a missing header, or an event without headers', () => {
    expect(header(withHeaders({ host: 'localhost' }), 'authorization')).toBeUndefined();
    expect(header(withHeaders(undefined), 'authorization')).toBeUndefined();
    // Not a property of the prototype either.
    expect(header(withHeaders({}), 'constructor')).toBeUndefined();
  });
});
