import { describe, expect, it } from 'vitest';
import { createSseParser } from '../../../packages/sdk/src/lib/sse.ts';
import type { SseEvent } from '../../../packages/sdk/src/lib/sse.ts';

describe('Function: createSseParser', () => {
  function parse(chunks: string[]): SseEvent[] {
    const events: SseEvent[] = [];
    const parser = createSseParser((event) => events.push(event));
    for (const chunk of chunks) parser.push(chunk);
    return events;
  }

  it('dispatches an event on a blank line, with its id and type', () => {
    // Act
    const events = parse(['id: 7\nevent: Lane Revoked\ndata: {"a":1}\n\n']);

    // Assess
    expect(events).toEqual([{ id: '7', event: 'Lane Revoked', data: '{"a":1}' }]);
  });

  it('handles frames split anywhere, CRLF split across chunks included', () => {
    // Act
    const events = parse(['id: 1\r', '\nda', 'ta: x\r\n', '\r\n', 'data: y\r\r']);

    // Assess
    expect(events).toEqual([
      { id: '1', event: 'message', data: 'x' },
      { id: '1', event: 'message', data: 'y' },
    ]);
  });

  it('ignores comments and joins data lines with a newline', () => {
    // Act
    const events = parse([': keep-alive\n\n', 'data: a\ndata:b\nretry: 10\n\n']);

    // Assess
    expect(events).toEqual([{ id: undefined, event: 'message', data: 'a\nb' }]);
  });

  it('ignores an id that contains NUL', () => {
    // Act
    const events = parse(['id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n']);

    // Assess
    expect(events.map((event) => event.id)).toEqual(['1', '1']);
  });
});
